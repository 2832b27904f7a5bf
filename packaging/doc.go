// Package packaging holds no Go code of the product: it is the home of the
// .deb and .rpm build (build.sh, nfpm.yaml), the systemd unit, the default
// configuration and the maintainer scripts, and of the tests that check
// them and the examples in deploy-examples/ (DESIGN.md §12, issue 6).
//
// The tests build real packages with build.sh and inspect them with
// dpkg-deb, rpm and lintian; as root, they install the .deb with dpkg, remove
// and purge it, and check that nothing is left. Each skips with the reason
// when a tool is missing or it is not root; CI has everything.
package packaging
