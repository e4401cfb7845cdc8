package events

import (
	"errors"
	"testing"
)

func asError(err error, target **Error) bool { return errors.As(err, target) }

func TestSwemwbsTable(t *testing.T) {
	t.Parallel()
	// Every raw score converts, the conversion rises strictly, and the
	// published anchor points hold.
	prev := 0.0
	for raw := int32(7); raw <= 35; raw++ {
		m, ok := SwemwbsMetric(raw)
		if !ok {
			t.Fatalf("raw %d has no metric score", raw)
		}
		if m <= prev {
			t.Errorf("metric for raw %d (%v) is not above raw %d's (%v)", raw, m, raw-1, prev)
		}
		prev = m
	}
	for raw, want := range map[int32]float64{7: 7.00, 14: 15.32, 21: 19.25, 28: 25.03, 35: 35.00} {
		if m, _ := SwemwbsMetric(raw); m != want {
			t.Errorf("raw %d: metric %v, want %v", raw, m, want)
		}
	}
	if _, ok := SwemwbsMetric(6); ok {
		t.Error("raw 6 converts")
	}
}

func TestScore(t *testing.T) {
	t.Parallel()
	tests := []struct {
		instrument string
		answers    []int32
		raw        int32
		score      float64
		field      string // refused naming this field
	}{
		{"SWEMWBS", []int32{3, 3, 3, 3, 3, 3, 3}, 21, 19.25, ""},
		{"SWEMWBS", []int32{1, 1, 1, 1, 1, 1, 1}, 7, 7, ""},
		{"SWEMWBS", []int32{5, 5, 5, 5, 5, 5, 5}, 35, 35, ""},
		{"SWEMWBS", []int32{3, 3, 3, 3, 3, 3}, 0, 0, "answers"},
		{"SWEMWBS", []int32{3, 3, 3, 3, 3, 3, 6}, 0, 0, "answers[6]"},
		{"SWEMWBS", []int32{0, 3, 3, 3, 3, 3, 3}, 0, 0, "answers[0]"},
		{"WEMWBS", []int32{1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2, 3, 4}, 40, 40, ""},
		{"WEMWBS", []int32{5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5}, 70, 70, ""},
		{"WEMWBS", []int32{1, 2, 3}, 0, 0, "answers"},
		{"UCLA3", []int32{1, 1, 1}, 3, 3, ""},
		{"UCLA3", []int32{3, 3, 3}, 9, 9, ""},
		{"UCLA3", []int32{3, 3, 4}, 0, 0, "answers[2]"},
		{"ONS4", []int32{6, 7, 5, 2}, 0, 0, ""},
		{"ONS4", []int32{0, 0, 0, 10}, 0, 0, ""},
		{"ONS4", []int32{6, 7, 5, 11}, 0, 0, "answers[3]"},
		{"ONS4", []int32{6, 7, 5, -1}, 0, 0, "answers[3]"},
		{"ONS4", []int32{6, 7, 5}, 0, 0, "answers"},
		{"GAD7", []int32{1}, 0, 0, "instrument"},
	}
	for _, tt := range tests {
		s, err := Score(tt.instrument, tt.answers)
		if tt.field != "" {
			var e *Error
			if err == nil || !asError(err, &e) || e.Field != tt.field || e.Code != CodeInvalid {
				t.Errorf("%s %v: got %v, want invalid %s", tt.instrument, tt.answers, err, tt.field)
			}
			continue
		}
		if err != nil || s.Raw != tt.raw || s.Score != tt.score || s.Version == "" {
			t.Errorf("%s %v: got %+v, %v; want raw %d score %v", tt.instrument, tt.answers, s, err, tt.raw, tt.score)
		}
	}
}

func TestONS4Bands(t *testing.T) {
	t.Parallel()
	want := map[int32][2]string{ // answer: {positive item band, anxiety band}
		0: {"low", "very_low"}, 1: {"low", "very_low"}, 2: {"low", "low"}, 3: {"low", "low"},
		4: {"low", "medium"}, 5: {"medium", "medium"}, 6: {"medium", "high"}, 7: {"high", "high"},
		8: {"high", "high"}, 9: {"very_high", "high"}, 10: {"very_high", "high"},
	}
	for a, w := range want {
		for item := range 3 {
			if got := ONS4Band(item, a); got != w[0] {
				t.Errorf("item %d answer %d: %s, want %s", item, a, got, w[0])
			}
		}
		if got := ONS4Band(3, a); got != w[1] {
			t.Errorf("anxiety answer %d: %s, want %s", a, got, w[1])
		}
	}
}
