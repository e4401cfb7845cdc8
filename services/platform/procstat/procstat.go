// Package procstat is what the kernel says this process has used, CPU
// time and peak resident memory (getrusage): for the figures the tools
// print (`linkway rebuild`) and the benchmarks report.
package procstat

import (
	"syscall"
	"time"
)

// CPU is the CPU time the process has used so far, user and system, on
// every thread (an embedded NATS server's included); 0 if the kernel
// does not say.
func CPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// PeakResident is the process's peak resident set size in bytes so far
// (maxrss, which Linux counts in KiB); 0 if the kernel does not say.
func PeakResident() uint64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return uint64(ru.Maxrss) << 10
}
