package events

import (
	"strconv"
)

// Scored is a questionnaire scored by its validated rules.
type Scored struct {
	Instrument string
	Version    string
	// Raw is the sum of the answers (0 for ONS4, whose items stand alone).
	Raw int32
	// Score is the reported score: the SWEMWBS metric score, otherwise Raw.
	Score float64
}

// instrument describes a questionnaire: item count and answer range. No
// pro-rating: an incomplete questionnaire is refused, as the scoring
// guidance for each requires.
type instrument struct {
	version  string
	items    int
	min, max int32
}

var instruments = map[string]instrument{
	// ONS personal well-being: life satisfaction, worthwhile, happiness, anxiety; 0-10 each.
	"ONS4": {version: "ONS4-2011", items: 4, min: 0, max: 10},
	// Short Warwick-Edinburgh Mental Wellbeing Scale: 7 items 1-5.
	"SWEMWBS": {version: "SWEMWBS-v1", items: 7, min: 1, max: 5},
	// Warwick-Edinburgh Mental Wellbeing Scale: 14 items 1-5.
	"WEMWBS": {version: "WEMWBS-v1", items: 14, min: 1, max: 5},
	// UCLA 3-item loneliness scale (Hughes et al. 2004): 3 items 1-3.
	"UCLA3": {version: "UCLA3-2004", items: 3, min: 1, max: 3},
}

// Instruments lists the instrument names Score accepts.
var Instruments = []string{"ONS4", "SWEMWBS", "WEMWBS", "UCLA3"}

// swemwbsMetric converts a SWEMWBS raw score (7-35) to its metric score by
// the published Rasch conversion table (Stewart-Brown et al. 2009).
var swemwbsMetric = map[int32]float64{
	7: 7.00, 8: 9.51, 9: 11.25, 10: 12.40, 11: 13.33, 12: 14.08, 13: 14.75,
	14: 15.32, 15: 15.84, 16: 16.36, 17: 16.88, 18: 17.43, 19: 17.98, 20: 18.59,
	21: 19.25, 22: 19.98, 23: 20.73, 24: 21.54, 25: 22.35, 26: 23.21, 27: 24.11,
	28: 25.03, 29: 26.02, 30: 27.03, 31: 28.13, 32: 29.31, 33: 30.70, 34: 32.55,
	35: 35.00,
}

// SwemwbsMetric returns the metric score for a raw SWEMWBS score.
func SwemwbsMetric(raw int32) (float64, bool) {
	m, ok := swemwbsMetric[raw]
	return m, ok
}

// Score checks and scores answers to an instrument.
func Score(name string, answers []int32) (Scored, error) {
	in, ok := instruments[name]
	if !ok {
		return Scored{}, Invalid("instrument", "must be one of %v", Instruments)
	}
	if len(answers) != in.items {
		return Scored{}, Invalid("answers", "%s needs exactly %d answers, got %d", name, in.items, len(answers))
	}
	var raw int32
	for i, a := range answers {
		if a < in.min || a > in.max {
			return Scored{}, Invalid("answers["+strconv.Itoa(i)+"]", "must be from %d to %d", in.min, in.max)
		}
		raw += a
	}
	s := Scored{Instrument: name, Version: in.version, Raw: raw, Score: float64(raw)}
	switch name {
	case "ONS4":
		s.Raw, s.Score = 0, 0
	case "SWEMWBS":
		s.Score = swemwbsMetric[raw]
	}
	return s, nil
}

// ONS4Items names the four ONS personal well-being questions in order.
var ONS4Items = []string{"life_satisfaction", "worthwhile", "happiness", "anxiety"}

// ONS4Band is the ONS threshold band of one ONS4 answer: for the first three
// items 0-4 low, 5-6 medium, 7-8 high, 9-10 very high; for anxiety (item 4,
// where lower is better) 0-1 very low, 2-3 low, 4-5 medium, 6-10 high.
func ONS4Band(item int, answer int32) string {
	if item == 3 {
		switch {
		case answer <= 1:
			return "very_low"
		case answer <= 3:
			return "low"
		case answer <= 5:
			return "medium"
		}
		return "high"
	}
	switch {
	case answer <= 4:
		return "low"
	case answer <= 6:
		return "medium"
	case answer <= 8:
		return "high"
	}
	return "very_high"
}
