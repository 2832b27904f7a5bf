package manifest

import (
	"bytes"
	"fmt"
	"strconv"
)

// Format writes m as manifest YAML that Parse reads back to an equal value.
// Unset optional fields are left out. drover push uses it to write the
// manifest it uploads.
func Format(m *Manifest) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "version: %d\n", m.Version)
	fmt.Fprintf(&b, "application: %s\n", strconv.Quote(m.Application))
	if m.Revision != "" {
		fmt.Fprintf(&b, "revision: %s\n", strconv.Quote(m.Revision))
	}
	b.WriteString("bundle:\n")
	if m.Bundle.Key != "" {
		fmt.Fprintf(&b, "  key: %s\n", strconv.Quote(m.Bundle.Key))
		fmt.Fprintf(&b, "  sha256: %s\n", strconv.Quote(m.Bundle.SHA256))
	} else {
		p := m.Bundle.Path
		if p == "" {
			p = "."
		}
		fmt.Fprintf(&b, "  path: %s\n", strconv.Quote(p))
	}
	d := m.Deployment
	b.WriteString("deployment:\n")
	if d.Strategy != "" {
		fmt.Fprintf(&b, "  strategy: %s\n", d.Strategy)
	}
	if d.Batch.Set {
		fmt.Fprintf(&b, "  batch: %s\n", strconv.Quote(d.Batch.String()))
	}
	if d.Canary.Set {
		fmt.Fprintf(&b, "  canary: %s\n", strconv.Quote(d.Canary.String()))
	}
	if d.Bake > 0 {
		fmt.Fprintf(&b, "  bake: %s\n", d.Bake)
	}
	if d.MinimumHealthy.Set {
		fmt.Fprintf(&b, "  minimum_healthy: %s\n", strconv.Quote(d.MinimumHealthy.String()))
	}
	if d.Rollback != "" {
		fmt.Fprintf(&b, "  rollback: %s\n", d.Rollback)
	}
	fmt.Fprintf(&b, "  ignore_application_stop_failures: %t\n", d.IgnoreApplicationStopFailures)
	fmt.Fprintf(&b, "  paused: %t\n", d.Paused)
	return b.Bytes()
}
