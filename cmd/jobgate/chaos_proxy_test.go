package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/jobgate/jobgate/internal/devenv"
)

// redisProxy is a toxiproxy (Shopify's, in this process, on loopback) in
// front of a test's Redis: cut holds every byte either way (a partition:
// connections stay open, nothing arrives), heal lets them flow again.
type redisProxy struct {
	proxy *toxiproxy.Proxy
	// url is redisURL with the proxy's address.
	url string
}

func newRedisProxy(t *testing.T, redisURL string) *redisProxy {
	t.Helper()
	u, err := url.Parse(redisURL)
	if err != nil {
		t.Fatal(err)
	}
	port, err := devenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	logger := zerolog.Nop()
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), logger)
	listen := fmt.Sprintf("127.0.0.1:%d", port)
	p := toxiproxy.NewProxy(srv, "redis", listen, u.Host)
	if err := p.Start(); err != nil {
		t.Fatalf("start toxiproxy: %v", err)
	}
	t.Cleanup(p.Stop)
	u.Host = listen
	return &redisProxy{proxy: p, url: u.String()}
}

// cut drops every byte either way from now on, on the open connections and
// new ones; nothing is closed.
func (r *redisProxy) cut(t *testing.T) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		body := `{"name":"cut-` + stream + `","type":"timeout","stream":"` + stream + `","attributes":{"timeout":0}}`
		if _, err := r.proxy.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			t.Fatalf("cut %s: %v", stream, err)
		}
	}
}

// heal lets the bytes through again.
func (r *redisProxy) heal(t *testing.T) {
	t.Helper()
	for _, stream := range []string{"upstream", "downstream"} {
		if err := r.proxy.Toxics.RemoveToxic(context.Background(), "cut-"+stream); err != nil {
			t.Fatalf("heal %s: %v", stream, err)
		}
	}
}
