//go:build race

package sim

// raceBuild: the race detector slows the simulator about tenfold; the CI
// tests run a third of their seeds, of every fault kind, in smaller groups.
const raceBuild = true
