// Package examples embeds the sample applications, for `drover demo` and
// tests.
package examples

import "embed"

// HelloWeb is the hello-web bundle: appspec.yml, app/ and scripts/.
//
//go:embed hello-web
var HelloWeb embed.FS
