package directory

import (
	"context"
	"net/http"

	"linkway/services/platform"
)

func (s *Service) serve(ctx context.Context, d platform.Deps) error {
	_ = http.MethodGet
	return nil
}
