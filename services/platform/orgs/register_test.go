package orgs_test

import (
	"context"
	"errors"
	"testing"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/natsserver"
	"linkway/services/platform/orgs"
)

type keyMap map[string]api.Principal

func (k keyMap) Lookup(_ context.Context, key string) (api.Principal, bool, error) {
	p, ok := k[key]
	return p, ok, nil
}

func TestAddCheckDisable(t *testing.T) {
	_, js := natsserver.Test(t)
	ctx := context.Background()
	r, err := orgs.Open(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, orgs.Organisation{ID: "U12345", Kind: events.KindLinkwork, Name: "A team"}, nil); err != nil {
		t.Fatal(err)
	}
	invalid := func(err error, field string) bool {
		var e *events.Error
		return errors.As(err, &e) && e.Code == events.CodeInvalid && e.Field == field
	}
	for _, tc := range []struct {
		o     orgs.Organisation
		teams []string
		field string
	}{
		{orgs.Organisation{ID: "bad code!", Kind: events.KindGP, Name: "x"}, nil, "code"},
		{orgs.Organisation{ID: "A1", Kind: "wizard", Name: "x"}, nil, "kind"},
		{orgs.Organisation{ID: "A1", Kind: events.KindGP, Name: "  "}, nil, "name"},
		{orgs.Organisation{ID: "A1", Kind: events.KindGP, Name: "x"}, []string{"U99999"}, "team"},
		{orgs.Organisation{ID: "A1", Kind: events.KindVCS, Name: "x"}, []string{"U12345"}, "team"},
	} {
		if err := r.Add(ctx, tc.o, tc.teams); !invalid(err, tc.field) {
			t.Errorf("Add(%+v, %v) = %v, want invalid %s", tc.o, tc.teams, err, tc.field)
		}
		if _, ok := r.Get(tc.o.ID); ok {
			t.Errorf("refused %s was registered", tc.o.ID)
		}
	}
	if err := r.Add(ctx, orgs.Organisation{ID: "A81001", Kind: events.KindGP, Name: "Riverside"}, []string{"U12345"}); err != nil {
		t.Fatal(err)
	}
	if o, _ := r.Get("A81001"); len(o.Teams) != 1 || o.Teams[0] != "U12345" {
		t.Errorf("practice's teams: %+v", o)
	}
	if err := r.Add(ctx, orgs.Organisation{ID: "QYG", Kind: events.KindCommissioner, Name: "ICB"}, []string{"U12345"}); err != nil {
		t.Fatal(err)
	}
	if got := r.CommissionersOf("U12345"); len(got) != 1 || got[0] != "QYG" {
		t.Errorf("commissioners of U12345: %v", got)
	}
	if err := r.Add(ctx, orgs.Organisation{ID: "A81001", Kind: events.KindGP, Name: "Again"}, nil); !errors.Is(err, orgs.ErrExists) {
		t.Errorf("adding a registered code: %v, want ErrExists", err)
	}

	keys := r.ActiveKeys(keyMap{"k": {OrgID: "A81001", Kind: events.KindGP}, "orphan": {OrgID: "GONE", Kind: events.KindGP}})
	if _, ok, _ := keys.Lookup(ctx, "k"); !ok {
		t.Fatal("an active organisation's key does not work")
	}
	if _, ok, _ := keys.Lookup(ctx, "orphan"); ok {
		t.Error("a key of an unregistered organisation works")
	}
	if err := r.SetDisabled(ctx, "A81001", true); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := keys.Lookup(ctx, "k"); ok || r.Active("A81001") {
		t.Error("a disabled organisation's key still works")
	}
	if o, _ := r.Get("A81001"); o.Name != "Riverside" || !o.Disabled {
		t.Errorf("disabling changed the record: %+v", o)
	}
	if err := r.SetDisabled(ctx, "A81001", false); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := keys.Lookup(ctx, "k"); !ok {
		t.Error("an enabled organisation's key does not work")
	}
	if err := r.SetDisabled(ctx, "NOPE", true); !errors.Is(err, orgs.ErrNotRegistered) {
		t.Errorf("disabling an unknown code: %v", err)
	}
}
