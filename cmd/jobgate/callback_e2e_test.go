package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// receiver is a callback endpoint on loopback that checks every signature.
type receiver struct {
	srv    *httptest.Server
	secret string

	// mu guards the fields below.
	mu       sync.Mutex
	failNext int
	got      []map[string]any
	bad      []string
}

func newReceiver(t *testing.T, failFirst int) *receiver {
	r := &receiver{secret: webhook.NewSecret(), failNext: failFirst}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := webhook.VerifyStandard([]string{r.secret}, req.Header, body, time.Now(), webhook.DefaultTolerance); err != nil {
			r.bad = append(r.bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if r.failNext > 0 {
			r.failNext--
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		var m map[string]any
		json.Unmarshal(body, &m)
		r.got = append(r.got, m)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) received() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

func TestCompletionCallbacks(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	ok := newReceiver(t, 0)
	flaky := newReceiver(t, 1)

	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/true"},
		Notify: &api.Notify{URL: ok.srv.URL + "/done", Secret: ok.secret}})
	testenv.Eventually(t, 30*time.Second, func() bool { return len(ok.received()) == 1 }, "no callback arrived")
	got := ok.received()[0]
	job, _ := got["job"].(map[string]any)
	if got["type"] != "job.succeeded" || job["id"] != j.ID || job["status"] != "succeeded" {
		t.Fatalf("callback = %v", got)
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), ok.secret) {
		t.Fatal("the callback carries its own secret")
	}

	// A receiver that fails once gets a retry; both attempts show on the job.
	f := c.submit(api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/false"},
		Notify: &api.Notify{URL: flaky.srv.URL, Secret: flaky.secret, Events: []string{"job.failed"}}})
	testenv.Eventually(t, 30*time.Second, func() bool { return len(flaky.received()) == 1 }, "no callback after a retry")
	if flaky.received()[0]["type"] != "job.failed" {
		t.Fatalf("callback = %v", flaky.received()[0])
	}
	var view struct {
		api.Job
		Notifications []store.Notification `json:"notifications"`
	}
	testenv.Eventually(t, 10*time.Second, func() bool {
		c.do("GET", "/v1/jobs/"+f.ID, "", &view)
		return len(view.Notifications) == 2
	}, "job shows %d callback attempts, want 2", len(view.Notifications))
	if view.Notifications[0].StatusCode != 500 || view.Notifications[1].StatusCode != 200 {
		t.Fatalf("attempts = %+v; want 500 then 200", view.Notifications)
	}
	if view.Spec.Notify == nil || view.Spec.Notify.Secret != "***" {
		t.Fatalf("the job shows its callback secret: %+v", view.Spec.Notify)
	}
	ok.mu.Lock()
	bad := ok.bad
	ok.mu.Unlock()
	if len(bad) > 0 {
		t.Fatalf("callbacks with bad signatures: %v", bad)
	}
}
