package hub

import (
	"context"
	"fmt"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/orgs"
)

// DemoKey is one demo API key of API.md.
type DemoKey struct {
	Key string
	Org orgs.Organisation
}

// DemoKeys are the demo organisations and their keys (API.md). They work
// only while the hub runs with --demo: they are held in memory, never stored.
var DemoKeys = []DemoKey{
	{"demo-gp-a81001", orgs.Organisation{ID: "A81001", Name: "Riverside Medical Practice", Kind: events.KindGP}},
	{"demo-gp-a81002", orgs.Organisation{ID: "A81002", Name: "Hillside Surgery", Kind: events.KindGP}},
	{"demo-lw-u12345", orgs.Organisation{ID: "U12345", Name: "Riverside and Hillside PCN link-worker team", Kind: events.KindLinkwork,
		Contact: "linkworkers@riverside-hillside.example.nhs.uk, 0161 496 0000"}},
	{"demo-vcs-001", orgs.Organisation{ID: "VCS001", Name: "Sale Walking Group", Kind: events.KindVCS}},
	{"demo-vcs-002", orgs.Organisation{ID: "VCS002", Name: "Trafford Money Advice", Kind: events.KindVCS}},
	{"demo-icb-qyg", orgs.Organisation{ID: "QYG", Name: "Cheshire and Merseyside ICB", Kind: events.KindCommissioner, Commissions: []string{"U12345"}}},
	{"demo-panel", orgs.Organisation{ID: "PANEL-SALE", Name: "Sale community panel", Kind: events.KindPanel}},
	{"demo-admin", orgs.Organisation{ID: "OPERATOR", Name: "Linkway operator", Kind: events.KindAdmin}},
	{"demo-ref-hsg01", orgs.Organisation{ID: "HSG01", Name: "Trafford Housing Trust", Kind: events.KindReferrer,
		Sector: events.SectorHousing, Teams: []string{"U12345"}}},
}

func seedDemo(ctx context.Context, registry *orgs.Registry, keys *apikeys.KeyRing) error {
	for _, d := range DemoKeys {
		if err := registry.Put(ctx, d.Org); err != nil {
			return fmt.Errorf("seed demo organisation %s: %w", d.Org.ID, err)
		}
		keys.AddDemo(d.Key, api.Principal{OrgID: d.Org.ID, Kind: d.Org.Kind})
	}
	return nil
}
