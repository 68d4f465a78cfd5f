package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/secretbox"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
)

// perfClients is how many clients submit at once in the submit benchmarks,
// as in the load test's scenario a (64 clients against raw asynq Enqueue
// from 64 goroutines, on the same Redis).
const perfClients = 64

// perfBody is the job the submit benchmarks post: a typical small job.
const perfBody = `{"name":"train","image":"localhost/jobgate-examples:test","command":["/bin/toolbox","echo","hello"],"env":{"EPOCHS":"3"},"resources":{"cpus":1,"memory_mb":512}}`

// submitRig is a gateway on a fresh redis-server, with an issued token of
// the default workspace (what clients hold; the system token is checked
// without Redis).
type submitRig struct {
	url, token string
	rdb        *redis.Client
	st         *store.Store
	calls      *testenv.Calls
	client     *http.Client
}

func newSubmitRig(tb testing.TB) *submitRig {
	tb.Helper()
	// One server in every mode (JOBGATE_TEST_REDIS): the rig measures one
	// Redis's used_memory and sizes its pool for the load.
	opts, err := redis.ParseURL(testenv.RedisIn(tb, tb.TempDir()).URL)
	if err != nil {
		tb.Fatal(err)
	}
	opts.PoolSize = 2 * perfClients
	rdb := redis.NewClient(opts)
	tb.Cleanup(func() { rdb.Close() })
	calls := testenv.CountCalls(rdb)
	st := store.New(rdb, store.Config{})
	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		tb.Fatal(err)
	}
	g, _ := newGateway(tb, Config{AdminToken: systemToken}, control.Config{}, rdb, st, box, nil)
	if err := st.EnsureWorkspace(context.Background(), api.Workspace{Name: DefaultWorkspace}); err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(g.Handler())
	tb.Cleanup(ts.Close)
	r := &submitRig{url: ts.URL, rdb: rdb, st: st, calls: calls,
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * perfClients}}}
	tb.Cleanup(r.client.CloseIdleConnections)
	var nt api.NewToken
	r.do(tb, "POST", "/v1/workspaces/"+DefaultWorkspace+"/tokens", systemToken, `{"name":"bench","scopes":["read","submit"]}`, http.StatusCreated, &nt)
	r.token = nt.Secret
	return r
}

// do sends one request and checks its status; out, when set, gets the JSON answer.
func (r *submitRig) do(tb testing.TB, method, path, token, body string, want int, out any) {
	req, err := http.NewRequest(method, r.url+path, strings.NewReader(body))
	if err != nil {
		tb.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		tb.Error(err)
		return
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		var e map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&e)
		tb.Errorf("%s %s: %d %v, want %d", method, path, resp.StatusCode, e, want)
		return
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			tb.Error(err)
		}
	} else {
		_, _ = resp.Body.Read(make([]byte, 4096))
	}
}

// usedMemory is Redis's used_memory (INFO memory).
func usedMemory(tb testing.TB, rdb *redis.Client) int64 {
	tb.Helper()
	info, err := rdb.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatal("INFO memory has no used_memory")
	return 0
}

// parallel runs n calls of f from perfClients goroutines.
func parallel(n int, f func()) {
	var wg sync.WaitGroup
	work := make(chan struct{}, n)
	for range n {
		work <- struct{}{}
	}
	close(work)
	for range perfClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				f()
			}
		}()
	}
	wg.Wait()
}

// BenchmarkSubmit is POST /v1/jobs from 64 clients (scenario a of the load
// test, in process); it reports the Redis bytes each queued job holds.
// Compare its ns/op with BenchmarkAsynqEnqueue's, from one run.
func BenchmarkSubmit(b *testing.B) {
	r := newSubmitRig(b)
	before := usedMemory(b, r.rdb)
	b.ResetTimer()
	parallel(b.N, func() { r.do(b, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, nil) })
	b.StopTimer()
	b.ReportMetric(float64(usedMemory(b, r.rdb)-before)/float64(b.N), "redis-B/job")
	b.ReportMetric(float64(r.calls.Trips())/float64(b.N), "trips/job")
}

// BenchmarkAsynqEnqueue is raw asynq Enqueue of the same spec from 64
// goroutines on a fresh Redis: the peer of BenchmarkSubmit.
func BenchmarkAsynqEnqueue(b *testing.B) {
	opts, err := redis.ParseURL(testenv.RedisIn(b, b.TempDir()).URL) // one server, as newSubmitRig
	if err != nil {
		b.Fatal(err)
	}
	opts.PoolSize = 2 * perfClients
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	c := asynq.NewClientFromRedisClient(rdb)
	before := usedMemory(b, rdb)
	b.ResetTimer()
	parallel(b.N, func() {
		if _, err := c.Enqueue(asynq.NewTask("job:run", []byte(perfBody))); err != nil {
			b.Error(err)
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(usedMemory(b, rdb)-before)/float64(b.N), "redis-B/job")
}

// TestSubmitRoundTrips: one POST /v1/jobs with a token the gateway has seen
// costs two Redis round trips: the workspace's rules, and one MULTI that
// stores the job, audits it, wakes the scheduler and tells its place.
func TestSubmitRoundTrips(t *testing.T) {
	r := newSubmitRig(t)
	r.do(t, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, nil) // the token is cached now
	r.calls.Reset()
	var j api.JobDetail
	r.do(t, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, &j)
	trips := r.calls.List()
	for i, tr := range trips {
		t.Logf("trip %d: %s", i+1, tr)
	}
	if j.ID == "" || j.Status != api.StatusQueued || j.QueuePosition == nil || *j.QueuePosition != 1 {
		t.Fatalf("answer %+v, want a queued job second in the queue", j)
	}
	// The workspace's rules, then the job with its indexes, audit entry,
	// wake-up and queue position in one MULTI: nothing read back.
	if len(trips) > 2 || r.calls.TripsTouching("{jobgate}:ws:"+DefaultWorkspace+":audit") != 1 || r.calls.TripsTouching("jobgate:wake:scheduler") != 1 {
		t.Fatalf("a submit took %d round trips, want at most 2 (the workspace's rules, the write)", len(trips))
	}
}

// TestRedisBytesPerQueuedJob: what a queued job holds in Redis, measured
// as used_memory's growth over many submits (INFO memory), and per key for
// one of them.
func TestRedisBytesPerQueuedJob(t *testing.T) {
	const n = 2000
	r := newSubmitRig(t)
	r.do(t, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, nil) // the indexes exist now
	before := usedMemory(t, r.rdb)
	parallel(n, func() { r.do(t, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, nil) })
	per := float64(usedMemory(t, r.rdb)-before) / n
	var j api.JobDetail
	r.do(t, "POST", "/v1/jobs", r.token, perfBody, http.StatusCreated, &j)
	ctx := context.Background()
	keys, err := r.rdb.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if strings.Contains(k, "job:") && !strings.Contains(k, j.ID) {
			continue
		}
		size, _ := r.rdb.MemoryUsage(ctx, k).Result()
		enc, _ := r.rdb.ObjectEncoding(ctx, k).Result()
		t.Logf("%s: %d bytes (%s)", k, size, enc)
	}
	t.Logf("%.0f bytes of Redis per queued job (%d jobs)", per, n)
}
