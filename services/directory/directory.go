// Package directory is the community directory service (work in progress:
// see its issue).
package directory

import (
	"context"

	"linkway/events"
	"linkway/services/api"
	"linkway/services/platform"
)

// Service is the directory.
type Service struct{}

// Start opens the directory; serve is false when this process only reads
// it for other services (no routes, no projections of its own).
func Start(ctx context.Context, d platform.Deps, serve bool) (*Service, error) {
	return &Service{}, nil
}

// Service implements platform.Directory.
func (s *Service) Service(ctx context.Context, id string) (events.ServiceFacts, bool, error) {
	return events.ServiceFacts{}, false, nil
}

// ServicesOf implements platform.Directory.
func (s *Service) ServicesOf(ctx context.Context, orgID string) ([]events.ServiceFacts, error) {
	return nil, nil
}

// SetCapacity implements platform.Directory.
func (s *Service) SetCapacity(ctx context.Context, actor api.Principal, serviceID, capacity string) error {
	return nil
}
