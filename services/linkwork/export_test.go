package linkwork

import (
	"context"

	"linkway/services/platform/views"
	"linkway/services/platform/viewstore"
)

// Internals the external tests (package linkwork_test, which may import
// hubtest) need.

// Projection is the caseload projection as the service renders it, for a
// second view folded beside the live one.
func (s *Service) Projection() views.Projection {
	return newProjection(s.policy, s.cfg.PersonRef)
}

// View is the caseload view.
func (s *Service) View() *viewstore.View { return s.view }

// AwaitView waits until the caseload view has applied stream sequence seq.
func (s *Service) AwaitView(ctx context.Context, seq uint64) error {
	return s.cfg.Views.WaitFor(ctx, seq, ProjectionName)
}
