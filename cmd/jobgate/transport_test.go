package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestSecureTransport runs a job through a gateway serving HTTPS and a
// gateway and worker talking to Redis over TLS with a password.
func TestSecureTransport(t *testing.T) {
	cert, key := testenv.TLSFiles(t)
	redisSvc := testenv.SecureRedis(t, devenv.RedisOptions{Password: "redis-pass-123", TLSCert: cert, TLSKey: key})
	if redisSvc.URL[:9] != "rediss://" {
		t.Fatalf("redis URL %s is not rediss://", redisSvc.URL)
	}

	c := &cluster{t: t, artifacts: t.TempDir(), workers: map[string]func(){}, token: testToken}
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	stopGW := c.start("gateway", "--addr", addr, "--redis-url", redisSvc.URL, "--redis-ca-file", cert,
		"--tls-cert", cert, "--tls-key", key, "--artifacts-dir", c.artifacts, "--allow-host-process-default", "--log-level", "warn")
	defer stopGW()
	stopW := c.start("worker", "--id", "tls", "--redis-url", redisSvc.URL, "--redis-ca-file", cert,
		"--artifacts-dir", c.artifacts, "--allow-host-process", "--podman-url", testenv.Podman(t),
		"--spool-dir", t.TempDir(), "--checkpoint-dir", t.TempDir(), "--log-level", "warn")
	defer stopW()

	pem, _ := os.ReadFile(cert)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	api2 := client.New("https://"+addr, testToken, client.WithHTTPClient(hc))
	var j *api.Job
	testenv.Eventually(t, 20*time.Second, func() bool {
		j, err = api2.Submit(context.Background(), api.JobSpec{Mode: api.ModeProcess, Command: []string{"/bin/echo", "over tls"}}, "")
		return err == nil
	}, "submit over HTTPS: %v", err)
	done, err := api2.Wait(context.Background(), j.ID)
	if err != nil || done.Status != api.StatusSucceeded {
		t.Fatalf("job over TLS: %+v, %v", done, err)
	}
	// Plain HTTP is not served.
	if resp, err := http.Get("http://" + addr + "/healthz"); err == nil && resp.StatusCode == 200 {
		t.Fatal("the TLS gateway answered plain HTTP")
	}
}
