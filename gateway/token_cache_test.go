package gateway

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestIssuedTokenLookupsCached: a hot loop of requests with one issued
// token reads it from Redis about once a second, not once per request;
// and a revoked token still stops within 2s.
func TestIssuedTokenLookupsCached(t *testing.T) {
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	st := store.New(rdb, store.Config{})
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	g, _ := newGateway(t, Config{AdminToken: systemToken}, control.Config{}, rdb, st, box, nil)
	ts := httptest.NewServer(checked(t, g))
	t.Cleanup(ts.Close)
	const secret = "jgt_hotlooptoken"
	if err := st.CreateToken(t.Context(), api.Token{ID: "tok-hot", Workspace: DefaultWorkspace, Name: "hot", Scopes: []api.Scope{api.ScopeRead}}, secret); err != nil {
		t.Fatal(err)
	}
	get := func() int {
		req, _ := http.NewRequest(http.MethodGet, ts.URL+"/v1/jobs", nil)
		req.Header.Set("Authorization", "Bearer "+secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	calls := testenv.CountCalls(rdb)
	start := time.Now()
	const n = 100
	for range n {
		if code := get(); code != http.StatusOK {
			t.Fatalf("GET /v1/jobs: %d", code)
		}
	}
	allowed := int(time.Since(start)/time.Second) + 2
	if got := calls.TripsTouching("{jobgate}:token:" + store.HashToken(secret)); got > allowed {
		t.Fatalf("%d requests read the token from Redis %d times; want at most %d (cached for a second)", n, got, allowed)
	}
	if err := st.DeleteToken(t.Context(), DefaultWorkspace, "tok-hot"); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 2*time.Second, func() bool { return get() == http.StatusUnauthorized }, "a revoked token still works")
}
