package main

import (
	"context"
	"net/http"
	"testing"

	"github.com/jobgate/jobgate/internal/openapicheck"
)

// openAPISinkKey holds, in the context a test runs jobgate in, the test the
// OpenAPI check of its gateway reports to.
type openAPISinkKey struct{}

// withOpenAPICheck makes every gateway run(ctx, ...) starts validate its
// /v1 and /hooks traffic against api/openapi.yaml, failing t on a mismatch.
func withOpenAPICheck(ctx context.Context, t testing.TB) context.Context {
	return context.WithValue(ctx, openAPISinkKey{}, t)
}

func init() {
	wrapGateway = func(ctx context.Context, h http.Handler) http.Handler {
		t, ok := ctx.Value(openAPISinkKey{}).(testing.TB)
		if !ok {
			return h
		}
		chk, err := openapicheck.New(t)
		if err != nil {
			t.Errorf("openapi check: %v", err)
			return h
		}
		return chk.Wrap(h)
	}
}
