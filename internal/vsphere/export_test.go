package vsphere

// BenchFleet and BenchTarget let the end-to-end benchmark of package
// vsphere_test use the same simulated fleet as the floor benchmark.
var (
	BenchFleet  = benchFleet
	BenchTarget = target
	BenchVMs    = benchVMs
)
