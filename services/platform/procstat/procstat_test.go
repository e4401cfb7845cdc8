package procstat

import (
	"testing"
	"time"
)

// sink keeps the work below from being optimised away.
var sink uint64

func TestCPUCountsWorkDone(t *testing.T) {
	start := CPU()
	deadline := time.Now().Add(10 * time.Second)
	for CPU()-start < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("10 s of busy work counted as %s of CPU", CPU()-start)
		}
		for i := range 1_000_000 {
			sink += uint64(i) * 31
		}
	}
}

func TestPeakResidentCountsTouchedMemory(t *testing.T) {
	const size = 64 << 20
	b := make([]byte, size)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page, so that it is resident
	}
	if got := PeakResident(); got < size {
		t.Errorf("peak resident %d MiB after touching %d MiB", got>>20, size>>20)
	}
	sink += uint64(b[len(b)-4096])
}
