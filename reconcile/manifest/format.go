package manifest

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
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
	if len(d.Gates) > 0 {
		b.WriteString("  gates:\n")
		for _, g := range d.Gates {
			formatGate(&b, g)
		}
	}
	return b.Bytes()
}

// formatGate writes one gate with every default resolved.
func formatGate(b *bytes.Buffer, g Gate) {
	fmt.Fprintf(b, "    - name: %s\n", strconv.Quote(g.Name))
	fmt.Fprintf(b, "      when: %s\n", g.When)
	if c := g.Prometheus; c != nil {
		b.WriteString("      prometheus:\n")
		fmt.Fprintf(b, "        url: %s\n", strconv.Quote(c.URL))
		fmt.Fprintf(b, "        query: %s\n", strconv.Quote(c.Query))
		formatAuth(b, c.Auth)
	}
	if c := g.HTTP; c != nil {
		b.WriteString("      http:\n")
		fmt.Fprintf(b, "        url: %s\n", strconv.Quote(c.URL))
		codes := make([]string, len(c.ExpectStatus))
		for i, s := range c.ExpectStatus {
			codes[i] = strconv.Itoa(s)
		}
		fmt.Fprintf(b, "        expect_status: [%s]\n", strings.Join(codes, ", "))
		if c.ExpectBody != "" {
			fmt.Fprintf(b, "        expect_body: %s\n", strconv.Quote(c.ExpectBody))
		}
		if c.ExpectBodyRegexp != "" {
			fmt.Fprintf(b, "        expect_body_regexp: %s\n", strconv.Quote(c.ExpectBodyRegexp))
		}
		formatAuth(b, c.Auth)
	}
	if g.Success != nil {
		fmt.Fprintf(b, "      success: %s\n", strconv.Quote(g.Success.String()))
	}
	if g.Failure != nil {
		fmt.Fprintf(b, "      failure: %s\n", strconv.Quote(g.Failure.String()))
	}
	fmt.Fprintf(b, "      interval: %s\n", g.Interval)
	fmt.Fprintf(b, "      timeout: %s\n", g.Timeout)
	fmt.Fprintf(b, "      initial_delay: %s\n", g.InitialDelay)
	if g.When != WhenContinuous {
		fmt.Fprintf(b, "      count: %d\n", g.Count)
	}
	fmt.Fprintf(b, "      failure_limit: %d\n", g.FailureLimit)
	fmt.Fprintf(b, "      inconclusive_limit: %d\n", g.InconclusiveLimit)
	if g.NoData != "" {
		fmt.Fprintf(b, "      no_data: %s\n", g.NoData)
	}
}

func formatAuth(b *bytes.Buffer, a Auth) {
	if a.BearerTokenFile != "" {
		fmt.Fprintf(b, "        bearer_token_file: %s\n", strconv.Quote(a.BearerTokenFile))
	}
	if a.BasicAuth != nil {
		fmt.Fprintf(b, "        basic_auth: {username: %s, password_file: %s}\n",
			strconv.Quote(a.BasicAuth.Username), strconv.Quote(a.BasicAuth.PasswordFile))
	}
	if a.TLS != (TLS{}) {
		b.WriteString("        tls:\n")
		if a.TLS.CAFile != "" {
			fmt.Fprintf(b, "          ca_file: %s\n", strconv.Quote(a.TLS.CAFile))
		}
		fmt.Fprintf(b, "          insecure_skip_verify: %t\n", a.TLS.InsecureSkipVerify)
	}
}
