// Package platform is what a Linkway service is given by the process that
// runs it: the event store, NATS, the organisation register, the HTTP
// server to add routes to, and a way to start projections. Services take a
// Deps and never reach for globals.
package platform

import (
	"context"
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"linkway/events"
	"linkway/services/platform/api"
	"linkway/services/platform/apikeys"
	"linkway/services/platform/audit"
	"linkway/services/platform/journal"
	"linkway/services/platform/orgs"
	"linkway/services/platform/sealing"
	"linkway/services/platform/views"
)

// Deps are a service's dependencies.
type Deps struct {
	NC    *nats.Conn
	JS    jetstream.JetStream
	Store *journal.Store
	Orgs  *orgs.Registry
	Keys  *apikeys.KeyRing
	// Audit records every read of identifiable data.
	Audit *audit.Log
	// Keyring seals personal data per person; erasure destroys a key.
	Keyring *sealing.Keyring
	HTTP    *api.Server
	Log     *slog.Logger
	Reg     prometheus.Registerer
	// Demo is true under --demo: services seed their demo data.
	Demo bool
	// Replicas of the buckets and streams a service creates.
	Replicas int
	// Project creates a projection's runner; the process runs it and
	// counts it for readiness.
	Project func(ctx context.Context, p views.Projector) (*views.Runner, error)
	// ProjectLocal creates a runner whose view is this process's memory
	// (views.Config.Local): every replica applies every event.
	ProjectLocal func(ctx context.Context, p views.Projector) (*views.Runner, error)
	// Directory finds community services for onward referrals and keeps
	// their capacity; set by the hub once the directory service is up.
	Directory Directory
	// Go runs a long-lived part of a service until the process stops; an
	// error it returns stops the process.
	Go func(run func(ctx context.Context) error)
}

// Directory is what other services need of the community directory.
type Directory interface {
	// Service returns what the journey rules need to know of a service;
	// found is false when there is no such service.
	Service(ctx context.Context, id string) (facts events.ServiceFacts, found bool, err error)
	// ServicesOf lists an organisation's services.
	ServicesOf(ctx context.Context, orgID string) ([]events.ServiceFacts, error)
	// SetCapacity records a service's capacity (open, waiting_list, full,
	// paused), changed by actor (a VCS organisation changing its own).
	SetCapacity(ctx context.Context, actor api.Principal, serviceID, capacity string) error
}
