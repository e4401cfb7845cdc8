package outcomes

import (
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"sync"
	"time"
)

// record is what the outcomes view keeps of one journey, at
// r.<team>.<referral day>.<journey id>: pseudonymised and coarsened facts
// only. No name, NHS number, birth date, postcode, contact detail or free
// text is ever kept here, so nothing built from it can leak one. Flags
// that are the journey's status (declined, contacted, connected,
// signposted), its needs and risks are copied from the folded state
// (events.State); the moments and scores only the events carry (first
// contact, first session, scores, decline reasons) are kept as they come.
type record struct {
	Practice  string
	Source    string
	AgeBand   string
	Sex       string
	Ethnicity string // NHS Data Dictionary ethnic category code, "" when not given
	Decile    uint8  // IMD decile 1-10; 0 unknown
	Reasons   []string
	// Needs are the need categories (bit i: needColumns[i]) of the latest
	// assessment, or those the referral reasons name until one.
	Needs uint32
	// Referred, FirstContact and FirstSession are Unix seconds; 0 when not
	// (yet) known. FirstSession is the date of the first attended session.
	Referred, FirstContact, FirstSession int64
	Flags                                uint16
	Onward                               []onwardFact
	// Baseline is the first baseline score of each of Measures, FollowUp the
	// latest follow-up; HasBaseline and HasFollowUp say which are set.
	Baseline, FollowUp       [numMeasures]float64
	HasBaseline, HasFollowUp uint8
	// Risks counts risks by kind (events.RiskKinds), Escalated those
	// escalated to the GP: commissioners see counts, never details.
	Risks     [numRiskKinds]uint8
	Escalated uint8
	// Worker is who holds the journey (team/worker id), for the
	// continuity of the worker across a person's journeys; never shown.
	Worker string
}

// Flags of a record.
const (
	flagDeclined   uint16 = 1 << iota // the person declined social prescribing (State.Declined)
	flagContacted                     // reached at least once (State.Contacted)
	flagConnected                     // State.Connection() is connected
	flagSignposted                    // State.Connection() is signposted
	flagReReferral                    // referred within 12 months after an earlier journey of the person
	flagSameKnown                     // a re-referral whose worker and previous worker are both known
	flagSameWorker                    // ... and they are the same
	flagSiblings                      // the person has other journeys in the person index
)

func (r *record) has(f uint16) bool { return r.Flags&f != 0 }

func (r *record) set(f uint16, on bool) {
	if on {
		r.Flags |= f
	} else {
		r.Flags &^= f
	}
}

// onwardFact is what became of one onward referral (in the order of
// State.Onward): facts the events carry, which later statuses do not keep
// (a person who attended and then dropped out did attend).
type onwardFact struct {
	Flags   uint8
	Decline uint8 // 0: not declined; i+1: events.DeclineReasons[i]
}

const (
	onwardAccepted uint8 = 1 << iota
	onwardAttended
	onwardCompleted
)

const numMeasures = 7

// numRiskKinds is len(events.RiskKinds), checked by a test.
const numRiskKinds = 5

func (r *record) change(i int) (float64, bool) {
	bit := uint8(1) << i
	if r.HasBaseline&bit == 0 || r.HasFollowUp&bit == 0 {
		return 0, false
	}
	return r.FollowUp[i] - r.Baseline[i], true
}

func (r *record) referredAt() time.Time { return time.Unix(r.Referred, 0).UTC() }

// recordVersion is the first byte of an encoded record: a record written
// by another version is read as missing (the view is then rebuilt).
const recordVersion = 1

// marshal encodes the record compactly: the view holds one per journey,
// and the reader rewrites it at most events, so JSON would be the larger
// part of the projection's cost.
func (r *record) marshal() []byte {
	b := make([]byte, 0, 96+len(r.Onward)*2)
	b = append(b, recordVersion)
	for _, s := range []string{r.Practice, r.Source, r.AgeBand, r.Sex, r.Ethnicity} {
		b = appendString(b, s)
	}
	b = append(b, r.Decile)
	b = binary.AppendUvarint(b, uint64(len(r.Reasons)))
	for _, s := range r.Reasons {
		b = appendString(b, s)
	}
	b = binary.AppendUvarint(b, uint64(r.Needs))
	b = binary.AppendVarint(b, r.Referred)
	b = binary.AppendVarint(b, r.FirstContact)
	b = binary.AppendVarint(b, r.FirstSession)
	b = binary.AppendUvarint(b, uint64(r.Flags))
	b = binary.AppendUvarint(b, uint64(len(r.Onward)))
	for _, o := range r.Onward {
		b = append(b, o.Flags, o.Decline)
	}
	b = append(b, r.HasBaseline, r.HasFollowUp)
	for i := range numMeasures {
		if r.HasBaseline&(1<<i) != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.Baseline[i]))
		}
		if r.HasFollowUp&(1<<i) != 0 {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(r.FollowUp[i]))
		}
	}
	b = append(b, r.Risks[:]...)
	b = append(b, r.Escalated)
	return appendString(b, r.Worker)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errBadRecord = errors.New("outcomes: unreadable record")

// decoder reads what marshal wrote; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() uint8 {
	if d.err != nil || len(d.b) < 1 {
		d.err = errBadRecord
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errBadRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.err = errBadRecord
		return ""
	}
	b := d.b[:n]
	d.b = d.b[n:]
	commonMu.RLock()
	s, ok := common[string(b)] // no allocation: the lookup does not keep the key
	commonMu.RUnlock()
	if ok {
		return s
	}
	return string(b)
}

// common holds the strings records repeat (bands, categories, sexes,
// sources, practice and reason codes), so that decoding a record seldom
// allocates them. Filled as records are made; bounded, since codes are.
var (
	commonMu sync.RWMutex
	common   = map[string]string{}
)

const maxCommon = 100_000

func intern(s string) {
	if len(s) == 0 || len(s) > 32 {
		return
	}
	commonMu.RLock()
	_, ok := common[s]
	commonMu.RUnlock()
	if ok {
		return
	}
	commonMu.Lock()
	if len(common) < maxCommon {
		common[s] = s
	}
	commonMu.Unlock()
}

func (d *decoder) float() float64 {
	if d.err != nil || len(d.b) < 8 {
		d.err = errBadRecord
		return 0
	}
	v := math.Float64frombits(binary.LittleEndian.Uint64(d.b))
	d.b = d.b[8:]
	return v
}

func unmarshalRecord(b []byte) (record, error) {
	var r record
	d := decoder{b: b}
	if d.byte() != recordVersion {
		return r, errBadRecord
	}
	r.Practice, r.Source, r.AgeBand, r.Sex, r.Ethnicity = d.string(), d.string(), d.string(), d.string(), d.string()
	r.Decile = d.byte()
	if n := d.uvarint(); n > 0 && n <= 64 {
		r.Reasons = make([]string, n)
		for i := range r.Reasons {
			r.Reasons[i] = d.string()
		}
	}
	r.Needs = uint32(d.uvarint())
	r.Referred, r.FirstContact, r.FirstSession = d.varint(), d.varint(), d.varint()
	r.Flags = uint16(d.uvarint())
	if n := d.uvarint(); n > 0 && n <= 1024 {
		r.Onward = make([]onwardFact, n)
		for i := range r.Onward {
			r.Onward[i] = onwardFact{Flags: d.byte(), Decline: d.byte()}
		}
	}
	r.HasBaseline, r.HasFollowUp = d.byte(), d.byte()
	for i := range numMeasures {
		if r.HasBaseline&(1<<i) != 0 {
			r.Baseline[i] = d.float()
		}
		if r.HasFollowUp&(1<<i) != 0 {
			r.FollowUp[i] = d.float()
		}
	}
	for i := range r.Risks {
		r.Risks[i] = d.byte()
	}
	r.Escalated = d.byte()
	r.Worker = d.string()
	if d.err != nil {
		return record{}, d.err
	}
	return r, nil
}

// personEntry is one journey of a person in the person index
// p.<person pseudonym>: what re-referrals and continuity are worked out
// from. Worker (team-qualified: a worker id is the team's own) is not
// stored here but read from the journey's record when needed, so that
// an assignment writes the index only for a person with other journeys.
type personEntry struct {
	Journey  string
	Key      string // the journey's record key
	Referred int64  // Unix seconds
	Worker   string
}

func marshalPerson(es []personEntry) []byte {
	b := []byte{recordVersion}
	b = binary.AppendUvarint(b, uint64(len(es)))
	for _, e := range es {
		b = appendString(b, e.Journey)
		b = appendString(b, e.Key)
		b = binary.AppendVarint(b, e.Referred)
	}
	return b
}

func unmarshalPerson(b []byte) ([]personEntry, error) {
	d := decoder{b: b}
	if d.byte() != recordVersion {
		return nil, errBadRecord
	}
	n := d.uvarint()
	if n > 10_000 {
		return nil, errBadRecord
	}
	es := make([]personEntry, 0, n)
	for range n {
		es = append(es, personEntry{Journey: d.string(), Key: d.string(), Referred: d.varint()})
	}
	return es, d.err
}

// Keys of the outcomes view.
const (
	recordPrefix = "r."  // r.<team>.<YYYY-MM-DD>.<journey>: a journey's record
	monthPrefix  = "m."  // m.<team>.<YYYY-MM>: the months a team has referrals in
	personPrefix = "p."  // p.<person pseudonym>: the person's journeys
	outboxPrefix = "f."  // f.<block>.<seq>: feed lines not yet known to be published
	prunedKey    = "f~p" // the first outbox block not yet pruned
)

func recordKey(team, day, journey string) string {
	return recordPrefix + team + "." + day + "." + journey
}

// keyParts returns the team and day of a record key.
func keyParts(key string) (team, day string, ok bool) {
	rest, ok := strings.CutPrefix(key, recordPrefix)
	if !ok {
		return "", "", false
	}
	team, rest, ok = strings.Cut(rest, ".")
	if !ok || len(rest) < len(time.DateOnly) {
		return "", "", false
	}
	return team, rest[:len(time.DateOnly)], true
}
