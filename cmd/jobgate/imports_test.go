package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/internal/testenv"
)

const module = "github.com/jobgate/jobgate/"

// importRules are AGENTS.md's rules of who may import whom, each as
// "packages under from never depend on packages under to" (tests included).
// That the import graph has no cycles needs no test: the compiler refuses
// an import cycle.
var importRules = []struct{ from, to, why string }{
	{"gateway", "worker", "gateway/ and worker/ talk through queue/ and internal/store only"},
	{"worker", "gateway", "gateway/ and worker/ talk through queue/ and internal/store only"},
	{"", "cmd", "cmd/ only wires; nothing imports it"},
	{"api", "", "api/ is the public contract and depends on no other jobgate package"},
	{"queue", "gateway", "queue/ carries messages between the components and depends on neither"},
	{"queue", "worker", "queue/ carries messages between the components and depends on neither"},
	{"internal", "gateway", "internal/ is shared by the components and depends on none"},
	{"internal", "worker", "internal/ is shared by the components and depends on none"},
	{"internal", "internal/control", "internal/control wires the control plane for gateway/ and cmd/; nothing below it builds on it"},
	{"internal/job", "internal/cron", "the job service knows none of its submitters"},
	{"internal/job", "internal/notify", "the job service knows none of the controllers"},
	{"internal/placement", "internal/job", "placement places jobs; it makes none"},
	{"internal/placement", "internal/cron", "the controllers do not know each other"},
	{"internal/placement", "internal/notify", "the controllers do not know each other"},
	{"internal/cron", "internal/notify", "the controllers do not know each other"},
	{"internal/notify", "internal/cron", "the controllers do not know each other"},
	{"internal/leader", "internal/job", "the elector only holds the lease; loops subscribe to it"},
	{"internal/leader", "internal/placement", "the elector only holds the lease; loops subscribe to it"},
	{"internal/leader", "internal/cron", "the elector only holds the lease; loops subscribe to it"},
	{"scoring", "gateway", "the scoring router reads the routing table from internal/store; it runs without the API"},
	{"scoring", "worker", "the scoring router reaches replicas over HTTP, never through the worker's code"},
	{"scoring", "internal/deploy", "the router serves what the controller wrote; it decides no scaling"},
	{"gateway", "scoring", "/v2 is mounted beside the API by cmd/, not by the gateway"},
	{"worker", "scoring", "workers run replicas; they do not route to them"},
	{"internal", "scoring", "internal/ is shared by the components and depends on none"},
	{"internal/placement", "internal/deploy", "the controllers do not know each other"},
}

// under reports whether pkg (a path inside the module) is dir or below it;
// "" is every package.
func under(pkg, dir string) bool {
	return dir == "" || pkg == dir || strings.HasPrefix(pkg, dir+"/")
}

// TestImportRules checks the module's import graph, from `go list`, against
// importRules: every package's dependencies, and its tests' imports.
func TestImportRules(t *testing.T) {
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(gobin); err != nil {
		if gobin, err = exec.LookPath("go"); err != nil {
			if testenv.Required() {
				t.Fatal("no go command to list the packages with")
			}
			t.Skip("no go command to list the packages with")
		}
	}
	cmd := exec.Command(gobin, "list", "-e", "-json=ImportPath,Deps,TestImports,XTestImports,Error", "./...")
	cmd.Dir = testenv.RepoRoot()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	type pkg struct {
		ImportPath                      string
		Deps, TestImports, XTestImports []string
		Error                           *struct{ Err string }
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	n := 0
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Error != nil {
			t.Errorf("go list %s: %s", p.ImportPath, p.Error.Err)
		}
		from, ok := strings.CutPrefix(p.ImportPath, module)
		if !ok {
			continue
		}
		n++
		for _, deps := range [][]string{p.Deps, p.TestImports, p.XTestImports} {
			for _, d := range deps {
				to, ok := strings.CutPrefix(d, module)
				if !ok || under(to, from) {
					continue // outside the module, or the package itself and below
				}
				for _, r := range importRules {
					if under(from, r.from) && under(to, r.to) {
						t.Errorf("%s depends on %s: %s", from, to, r.why)
					}
				}
			}
		}
	}
	if n < 10 {
		t.Fatalf("go list found %d packages of the module; want them all", n)
	}
}

// leaseAndLoopCalls are calls that take or renew a lease, or start a
// process-wide loop: the components' business, not the HTTP layer's.
var leaseAndLoopCalls = map[string]bool{
	"AcquireLeadership": true, "ReleaseLeadership": true, // the leader lease (internal/leader)
	"RenewExecLease": true, // an exec session's lease (queue.ExecLease)
	"NewWaker":       true, // the scheduler's wake-ups (internal/placement)
	"ReadEnded":      true, // the callbacks' stream (internal/notify)
	"Subscribe":      true, // a process-wide pub/sub fan-out (internal/loghub)
}

// TestGatewayRunsNoLoop: no file in gateway/ runs a loop of its own or holds
// a lease (issue 11): it starts no goroutine (the HTTP server's are
// errgroup.Go calls in Run), and makes none of leaseAndLoopCalls.
func TestGatewayRunsNoLoop(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "gateway", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("gateway/*.go: %v (%d files)", err, len(files))
	}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: a go statement; a loop beside the HTTP API is a component with Run(ctx) error, outside gateway/", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if leaseAndLoopCalls[n.Sel.Name] {
					t.Errorf("%s: %s; the lease or loop belongs to a component outside gateway/", fset.Position(n.Pos()), n.Sel.Name)
				}
			}
			return true
		})
	}
}
