// Command bareproxy is Go's httputil.ReverseProxy with a tuned transport and
// nothing else (no auth, routing table, retry or tracing): BENCHMARKS.md runs
// it beside the scoring router to tell the cost of Go's proxy stack from the
// router's own steps. Not part of jobgate.
//
//	go run ./scripts/bareproxy 127.0.0.1:PORT http://127.0.0.1:UPSTREAM
package main

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: bareproxy LISTEN_ADDR UPSTREAM_URL")
		os.Exit(2)
	}
	upstream, err := url.Parse(os.Args[2])
	if err != nil {
		log.Fatalf("upstream %q: %v", os.Args[2], err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(upstream) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true},
		ErrorLog:  log.New(io.Discard, "", 0), // a client that goes away is not news here
	}
	log.Fatal(http.ListenAndServe(os.Args[1], proxy))
}
