package linkwork

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"linkway/events"
)

// The caseload view's keys. Every list a team reads is one prefix scan,
// and everything a change touches is found by key (a projection's batch
// reads keys, it does not scan):
//
//	r/<journey>                          the journey's row: what lists and figures show, and what its index keys were made from
//	j/<journey>/<kind>/<id>              the journey's detail, an entry per item (timeline, contacts, goals, measures, ...)
//	j/<journey>/p/...                    the person's data and every free text, apart, so that erasure is one prefix
//	l/<team>/<filter>/<order>/<journey>  the team's lists: filter all, open or a status; order urgent first, then oldest referral
//	lw/<team>/<worker>/<filter>/...      the same lists of one worker
//	d/<team>/<due>/<journey>/<follow-up> follow-ups still to hold, by due date
//	x/<team>/<-closed day>/<journey>     closed journeys, newest first (value: the worker): closed in 12 months, this month
//	n/<team>/<-opened day>/<journey>     journeys by the day they were referred or last reopened, newest first
//	a/<team>/<-assigned day>/<journey>   journeys by the day of their latest assignment (value: the worker)
//	ppl/<team>/<person>                  a person's journeys with the team (person: keyed hash of the NHS number)
//	wo/<team>/<worker>                   a worker's open-case figures, kept as journeys change
//	to/<team>                            the team's open-case figures
//	sv/<team>/<worker>                   a worker's supervision sessions
//
// '/' separates parts; a part that could hold one (worker and item ids)
// is escaped, so no value can reach into another's range.

func rowKey(journeyID string) string { return "r/" + journeyID }

// detailPrefix holds every key of a journey's detail; personalPrefix the
// person's data and free text among them.
func detailPrefix(journeyID string) string   { return "j/" + journeyID + "/" }
func personalPrefix(journeyID string) string { return "j/" + journeyID + "/p/" }

func itemKey(journeyID, kind, id string) string {
	return "j/" + journeyID + "/" + kind + "/" + part(id)
}
func personalKey(journeyID, kind, id string) string {
	return "j/" + journeyID + "/p/" + kind + "/" + part(id)
}

func listPrefix(team, filter string) string { return "l/" + team + "/" + filter + "/" }
func workerListPrefix(team, worker, filter string) string {
	return "lw/" + team + "/" + part(worker) + "/" + filter + "/"
}
func duePrefix(team string) string      { return "d/" + team + "/" }
func closedPrefix(team string) string   { return "x/" + team + "/" }
func openedPrefix(team string) string   { return "n/" + team + "/" }
func assignedPrefix(team string) string { return "a/" + team + "/" }
func personKey(team, ref string) string { return "ppl/" + team + "/" + part(ref) }
func workerPrefix(team string) string   { return "wo/" + team + "/" }
func workerKey(team, worker string) string {
	return workerPrefix(team) + part(worker)
}
func teamKey(team string) string                { return "to/" + team }
func supervisionPrefix(team string) string      { return "sv/" + team + "/" }
func supervisionKey(team, worker string) string { return supervisionPrefix(team) + part(worker) }

// part escapes a key part: letters, digits and . _ @ - stay, anything else
// (the separator '/' first) becomes %XX.
func part(s string) string {
	safe := true
	for i := 0; i < len(s); i++ {
		if !safeByte(s[i]) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; safeByte(c) {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// unpart reverses part.
func unpart(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func safeByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '@' || c == '-'
}

// lastPart is what follows the last '/' of a key: a journey id.
func lastPart(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// order is a journey's place in its team's lists: urgent first, then the
// oldest referral (the longest wait), then the id.
func order(urgent bool, referredAt time.Time, journeyID string) string {
	rank := "1"
	if urgent {
		rank = "0"
	}
	return fmt.Sprintf("%s%020d/%s", rank, max(referredAt.UnixNano(), 0), journeyID)
}

// day is a moment's calendar day in England.
func day(t time.Time) string { return events.UKDate(t).Format(time.DateOnly) }

// newestFirst turns a day into a key part that sorts later days first, so
// a scan of "since" reads only the days it wants and stops.
func newestFirst(day string) string {
	n, err := strconv.Atoi(strings.ReplaceAll(day, "-", ""))
	if err != nil {
		return "99999999"
	}
	return fmt.Sprintf("%08d", 99999999-n)
}

// dayOfNewestFirst reverses newestFirst.
func dayOfNewestFirst(p string) string {
	n, err := strconv.Atoi(p)
	if err != nil {
		return ""
	}
	d := strconv.Itoa(99999999 - n)
	if len(d) != 8 {
		return ""
	}
	return d[:4] + "-" + d[4:6] + "-" + d[6:]
}
