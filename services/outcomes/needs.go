package outcomes

import "linkway/events"

// needColumns are the need categories unmet need is counted by: the one
// taxonomy every view shares (events.NeedCategories), then "unassessed"
// for journeys with no need named yet (neither assessed nor placed from
// their referral reasons).
var needColumns = append(events.NeedIDs(), "unassessed")
