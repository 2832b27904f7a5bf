//go:build race

package sim

// raceBuild: the race detector slows the simulator about tenfold; the CI
// test keeps its 200+ seeds and every fault kind but uses smaller groups.
const raceBuild = true
