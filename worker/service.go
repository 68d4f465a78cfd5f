package worker

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/queue"
)

// A service job (Spec.Service set) is a deployment's replica: a model
// server that runs until it is stopped. The worker fetches the model
// version it serves into its model cache (checked against the version's
// SHA-256), gives it to the workload read-only (/model in a container, the
// cache's host path to a process), picks a free port on AdvertiseHost,
// and keeps the replica's endpoint in the store (store.Endpoint): starting,
// ready once the readiness probe answers 200, draining when it is stopped,
// removed when the attempt ends; every change wakes the scoring routers
// (queue.ChannelRouting), and the attempt's end wakes the deployment
// controller (queue.ChannelDeploy).

const (
	// DefaultAdvertiseHost is Config.AdvertiseHost's default.
	DefaultAdvertiseHost = "127.0.0.1"
	// DefaultDrainDelay is Config.DrainDelay's default.
	DefaultDrainDelay = time.Second
	// DefaultReadinessPath is probed when the service names none.
	DefaultReadinessPath = "/v2/health/ready"
	// ModelMount is where a container replica finds its model.
	ModelMount = "/model"
)

// The probe's and the endpoint's rhythm.
const (
	// probeFast is the probe's interval while the replica is not ready.
	probeFast = 40 * time.Millisecond
	// probeSlow is its interval once the replica is ready.
	probeSlow = time.Second
	// probeTimeout bounds one probe.
	probeTimeout = time.Second
	// probeFailures in a row take a ready replica back to starting.
	probeFailures = 3
	// portTakenFailAfter is how long another program may hold a replica's
	// port (see portOwner) before the replica fails: its workload is
	// stopped and the attempt ends with errPortTaken.
	portTakenFailAfter = 5 * time.Second
	// workloadPIDTimeout bounds the executor's naming of the workload's
	// process for the port check.
	workloadPIDTimeout = 10 * time.Second
	// notReadyNoteAfter is when the job's log says why its server is not
	// ready yet.
	notReadyNoteAfter = 30 * time.Second
	// endpointRenewEvery renews the endpoint, whose record lives 30 s.
	endpointRenewEvery = 10 * time.Second
	// serviceTokenTTL is the life of a service job's token, renewed with its
	// endpoint: a replica runs without a timeout, and the token of one
	// whose worker died dies within this.
	serviceTokenTTL = time.Hour
)

var hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)

// validateService checks the service settings of c.
func (c Config) validateService() error {
	if c.DrainDelay < 0 {
		return fmt.Errorf("worker: drain delay %s: must not be negative (0 means the default, %s)", c.DrainDelay, DefaultDrainDelay)
	}
	if h := c.AdvertiseHost; h != "" && net.ParseIP(h) == nil && !hostnameRE.MatchString(h) {
		return fmt.Errorf("worker: advertise host %q: want an IP address or a host name, without a port", h)
	}
	return nil
}

// jobTokenTTL is the life of a job's token: its timeout and an hour; a
// service job's serviceTokenTTL, renewed while it runs.
func jobTokenTTL(spec api.JobSpec) time.Duration {
	if spec.Service != nil {
		return serviceTokenTTL
	}
	return time.Duration(spec.TimeoutSeconds)*time.Second + time.Hour
}

// serviceEnded wakes the deployment controller once a replica's task is
// done (its end recorded), so that it restarts or replaces it.
func (w *Worker) serviceEnded(ctx context.Context) {
	nctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = queue.Notify(nctx, w.rdb, queue.ChannelDeploy)
}

// portSet is the ports given to the replicas running on a worker, so that
// two starting at once do not get the same one.
type portSet struct {
	// mu guards the fields below.
	mu    sync.Mutex
	taken map[int]bool
	// pick, set by tests, chooses the port instead (SetPortPicker).
	pick func() int
}

// take reserves a free TCP port on host.
func (p *portSet) take(host string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.taken == nil {
		p.taken = map[int]bool{}
	}
	if p.pick != nil {
		port := p.pick()
		p.taken[port] = true
		return port, nil
	}
	for range 32 {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return 0, fmt.Errorf("pick a port on %s: %w", host, err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if !p.taken[port] {
			p.taken[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("pick a port on %s: every port offered is in use by a replica", host)
}

func (p *portSet) give(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.taken, port)
}

// portPublisher is an executor whose workloads have a network of their own
// (podman's bridge): a replica's port is published on the host, and the
// server inside listens on every address.
type portPublisher interface {
	publishesPorts() bool
}

// workloadPIDer is an executor that names the host process of a running
// attempt's command (its container's first process, or a process
// workload's group leader), 0 while there is none, so that the worker can
// tell the replica's sockets from another program's (portOwner).
type workloadPIDer interface {
	workloadPID(ctx context.Context, jobID string, number int) (int, error)
}

var (
	_ workloadPIDer = (*PodmanExecutor)(nil)
	_ workloadPIDer = (*ProcessExecutor)(nil)
)

// errPortTaken ends a replica whose port another program held for
// portTakenFailAfter.
var errPortTaken = errors.New("the replica's port was taken by another program")

// replica is one running service attempt, as its worker sees it.
type replica struct {
	w        *Worker
	endpoint store.Endpoint
	// addr is host:port, where the server listens.
	addr string
	// probeURL is the readiness probe's address.
	probeURL string
	token    string
	port     int
	// pids names the workload's process for the port check; nil skips
	// it (the port is published by podman, which holds it on the host).
	pids workloadPIDer
	// ip is the probe's address, invalid for a host name (then every
	// listener on the port counts).
	ip netip.Addr
	// root is the workload's process last found to hold the port.
	root int
	// takenSince is when another program was first seen on the port, in
	// the current run of such probes; zero when it was not.
	takenSince time.Time
	// portCheckedAt is when the port was last found the replica's own.
	portCheckedAt time.Time
	// unsureNoted says the worker logged that it could not tell who holds
	// the port.
	unsureNoted bool
	// portNote says why the last port check did not find the port the
	// replica's own.
	portNote string
}

// portRecheckEvery is how often a ready replica's port is checked again
// (portOwner reads all of /proc/net/tcp and tcp6, some milliseconds on a
// large machine); a replica becoming ready is checked on every probe.
const portRecheckEvery = 10 * time.Second

// portCheckDue says whether this probe's answer needs the port check: on
// every probe until the replica is ready and while another program holds
// the port, then every portRecheckEvery.
func (r *replica) portCheckDue(ready bool) bool {
	return !ready || !r.takenSince.IsZero() || r.w.now().Sub(r.portCheckedAt) >= portRecheckEvery
}

// giveService readies a service attempt: the model in place, a port, the
// JOBGATE_MODEL_* / JOBGATE_HOST / JOBGATE_PORT variables (giveModelServer),
// and the endpoint it keeps. A model that is not there or does not match
// its checksum wraps errInputUnavailable. The caller calls close on the
// replica (nil-safe) when the attempt ends.
func (w *Worker) giveService(ctx context.Context, a *Attempt, exec Executor, job *api.Job, attempt int, token string) (*replica, error) {
	svc := job.Spec.Service
	r, err := w.giveModelServer(ctx, a, exec, job.Workspace, svc, job.ID, attempt)
	if err != nil {
		return nil, err
	}
	r.token = token
	r.endpoint = store.Endpoint{JobID: job.ID, Attempt: attempt, Workspace: job.Workspace, Deployment: svc.Deployment,
		Replica: svc.Replica, Worker: w.cfg.ID, Address: r.addr, State: store.EndpointStarting, Model: svc.Model,
		Version: svc.Version, Revision: svc.Revision}
	return r, nil
}

// giveModelServer readies attempt number attempt of job jobID (of
// workspace ws) to run a model server of svc's model version, served as
// svc.Deployment (JOBGATE_MODEL_NAME): the model fetched and given
// read-only, a port, the JOBGATE_MODEL_* / JOBGATE_HOST / JOBGATE_PORT
// variables. The replica it returns probes and checks the port; it has no
// endpoint or token (a batch-score job's server, which nothing routes to,
// keeps it so; giveService adds them). The caller calls close on it.
func (w *Worker) giveModelServer(ctx context.Context, a *Attempt, exec Executor, ws string, svc *api.Service, jobID string, attempt int) (*replica, error) {
	modelDir, file, err := w.fetchModel(ctx, ws, svc)
	if err != nil {
		return nil, err
	}
	port, err := w.ports.take(w.cfg.AdvertiseHost)
	if err != nil {
		return nil, err
	}
	r := &replica{w: w, port: port}
	r.ip, _ = netip.ParseAddr(w.cfg.AdvertiseHost)
	r.addr = net.JoinHostPort(w.cfg.AdvertiseHost, strconv.Itoa(port))
	// The port check names the workload by its job and attempt.
	r.endpoint = store.Endpoint{JobID: jobID, Attempt: attempt}
	listen := w.cfg.AdvertiseHost
	if pp, ok := exec.(portPublisher); ok && a.Spec.Mode == api.ModeContainer && pp.publishesPorts() {
		a.Ports = append(a.Ports, Port{HostIP: w.cfg.AdvertiseHost, HostPort: port, ContainerPort: port})
		listen = "0.0.0.0" // inside its own network namespace
		// No port check: podman binds the host port itself when it starts
		// the container (a program that took it first makes the start fail)
		// and holds it until the container is gone, when the attempt ends.
	} else {
		// Host networking: any program may bind the port the worker
		// closed. Without a way to name the workload's processes the
		// check finds the port foreign and the replica never gets ready.
		r.pids, _ = exec.(workloadPIDer)
		if r.pids == nil {
			r.pids = noPIDs{}
		}
	}
	modelPath := modelDir
	if a.Spec.Mode == api.ModeContainer {
		a.Mounts = append(a.Mounts, Mount{Source: modelDir, Target: ModelMount, ReadOnly: true})
		modelPath = ModelMount
	}
	if file != "" {
		modelPath = path.Join(filepath.ToSlash(modelPath), file)
		if a.Spec.Mode != api.ModeContainer {
			modelPath = filepath.Join(modelDir, file)
		}
	}
	a.Env["JOBGATE_MODEL_PATH"] = modelPath
	a.Env["JOBGATE_MODEL_NAME"] = svc.Deployment
	a.Env["JOBGATE_MODEL_VERSION"] = strconv.Itoa(svc.Version)
	a.Env["JOBGATE_HOST"] = listen
	a.Env["JOBGATE_PORT"] = strconv.Itoa(port)
	r.probeURL = "http://" + r.addr + readinessPath(svc.ReadinessPath)
	return r, nil
}

// readinessPath is p, or the default, with a leading slash.
func readinessPath(p string) string {
	p = cmp.Or(p, DefaultReadinessPath)
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}

// close gives the replica's port back.
func (r *replica) close() {
	if r != nil {
		r.w.ports.give(r.port)
	}
}

// runService runs a service attempt's workload and keeps its endpoint
// until it ends. When ctx ends first (cancel, preemption, the worker
// stopping) the replica drains: its endpoint says draining, and the
// workload gets DrainDelay before it is stopped (with its grace) under
// ctx's cause. The endpoint is removed as soon as the workload is gone.
func (w *Worker) runService(ctx context.Context, exec Executor, a Attempt, r *replica, stdout, stderr io.Writer) (Outcome, error) {
	work, stop := context.WithCancelCause(context.WithoutCancel(ctx))
	defer stop(nil)
	exited := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		r.watch(ctx, exited, stop, stderr)
	}()
	res, err := runSteps(work, exec, a, stdout, stderr)
	close(exited)
	<-watched
	r.remove(ctx)
	if cause := context.Cause(work); err == nil && errors.Is(cause, errPortTaken) {
		return res, cause
	}
	return res, err
}

// watch keeps the endpoint while the workload runs (until exited is
// closed): it probes readiness, renews the endpoint and the job's token,
// and drains when ctx ends, then stops the workload with ctx's cause. A
// probe answered by another program's listener (see portOwner) is not a
// success; when that lasts portTakenFailAfter it stops the workload with
// errPortTaken. Notes for the job's log go to stderr.
func (r *replica) watch(ctx context.Context, exited <-chan struct{}, stop context.CancelCauseFunc, stderr io.Writer) {
	bg := context.WithoutCancel(ctx)
	r.put(bg)
	_ = queue.Notify(bg, r.w.rdb, queue.ChannelRouting)
	client := newProbeClient()
	defer client.CloseIdleConnections()
	var rd readiness
	since, notedSlow := r.w.now(), false
	probeT := time.NewTimer(probeFast)
	defer probeT.Stop()
	renew := time.NewTicker(endpointRenewEvery)
	defer renew.Stop()
	for {
		select {
		case <-exited:
			return
		case <-ctx.Done():
			r.drain(bg, exited)
			stop(context.Cause(ctx))
			return
		case <-renew.C:
			r.put(bg)
			if err := r.w.store.RenewJobToken(bg, r.token, serviceTokenTTL); err != nil {
				r.w.logger.WarnContext(bg, "renew the service job's token", slog.String("job_id", r.endpoint.JobID), slog.Any("error", err))
			}
		case <-probeT.C:
			perr := probe(ctx, client, r.probeURL)
			ok := perr == nil
			why := ""
			if perr != nil {
				why = perr.Error()
			}
			taken := false
			if ok && r.pids != nil && r.portCheckDue(rd.ready) {
				ok, taken = r.ownsPort(ctx, stderr)
				if ok {
					r.portCheckedAt = r.w.now()
				} else {
					why = r.portNote
				}
			}
			state, changed := rd.observe(ok)
			if !rd.ready && !notedSlow && r.w.now().Sub(since) >= notReadyNoteAfter && ctx.Err() == nil {
				// Say once why a server stays unready, where its user looks.
				notedSlow = true
				fmt.Fprintf(stderr, "jobgate: the server (%s) is not ready after %s: %s\n", r.probeURL, notReadyNoteAfter, why)
				r.w.logger.WarnContext(bg, "a model server is not ready yet", slog.String("job_id", r.endpoint.JobID),
					slog.String("probe", r.probeURL), slog.String("why", why))
			}
			if taken {
				// Not one more request may go there.
				state, changed = rd.lost()
			}
			if changed {
				r.endpoint.State = state
				r.put(bg)
				_ = queue.Notify(bg, r.w.rdb, queue.ChannelRouting)
			}
			if taken && r.w.now().Sub(r.takenSince) >= portTakenFailAfter {
				err := fmt.Errorf("%w: port %d on %s was held by another program's listener for %s", errPortTaken, r.port, r.w.cfg.AdvertiseHost, portTakenFailAfter)
				r.w.logger.WarnContext(bg, "stop the replica: its port is held by another program", slog.String("job_id", r.endpoint.JobID),
					slog.Int("port", r.port))
				stop(err)
				return
			}
			next := rd.interval()
			if taken {
				next = probeSlow // the check reads all of /proc: not at probeFast
			}
			probeT.Reset(next)
		}
	}
}

// ownsPort checks, after the probe was answered, that the sockets
// listening on the replica's port are held by its workload's processes:
// ok when they are, taken when one is another program's (noted in the
// job's log and the worker's when that starts), neither when nothing
// listens any more or the worker could not tell (the executor did not
// name the workload's process: podman slow under load). Not knowing is
// not ready, but it is no sign of another program either, so it does not
// start the clock that fails the replica: the next probe asks again.
func (r *replica) ownsPort(ctx context.Context, stderr io.Writer) (ok, taken bool) {
	own, inode, err := r.checkPort(ctx)
	switch {
	case err != nil:
		r.portNote = fmt.Sprintf("the probe was answered, but the worker cannot tell who holds port %d: %v", r.port, err)
	case own == portFree:
		r.portNote = fmt.Sprintf("the probe was answered, but nothing listens on port %d in this worker's network namespace", r.port)
	}
	if err != nil {
		if !r.unsureNoted && ctx.Err() == nil {
			r.unsureNoted = true
			r.w.logger.WarnContext(ctx, "cannot tell who holds the replica's port yet: not ready until the worker can", slog.String("job_id", r.endpoint.JobID),
				slog.Int("port", r.port), slog.Any("error", err))
		}
		return false, false
	}
	if own != portForeign {
		if !r.takenSince.IsZero() {
			r.w.logger.InfoContext(ctx, "the replica's port is no longer held by another program", slog.String("job_id", r.endpoint.JobID), slog.Int("port", r.port))
		}
		r.takenSince = time.Time{}
		return own == portOwned, false
	}
	if r.takenSince.IsZero() {
		r.takenSince = r.w.now()
		why := fmt.Sprintf("the socket listening there (inode %d) is held by none of the replica's processes", inode)
		fmt.Fprintf(stderr, "jobgate: port %d on %s answers the readiness probe, but %s: another program took the port, so the replica is not ready (it fails if this lasts %s)\n",
			r.port, r.w.cfg.AdvertiseHost, why, portTakenFailAfter)
		r.w.logger.WarnContext(ctx, "the replica's port is held by another program: not ready", slog.String("job_id", r.endpoint.JobID),
			slog.Int("port", r.port), slog.Uint64("inode", inode))
	}
	return false, true
}

// checkPort runs portOwner.check against the workload's process: the one
// found last time, else the one the executor names now.
func (r *replica) checkPort(ctx context.Context) (portOwnership, uint64, error) {
	var po portOwner
	if r.root > 0 {
		if own, inode, err := po.check(r.root, r.ip, r.port); err != nil || own != portForeign {
			return own, inode, err
		}
	}
	// Podman's inspect can take seconds on a loaded machine; the attempt's
	// ctx still ends the wait at once.
	pctx, cancel := context.WithTimeout(ctx, workloadPIDTimeout)
	defer cancel()
	root, err := r.pids.workloadPID(pctx, r.endpoint.JobID, r.endpoint.Attempt)
	if err != nil {
		return portForeign, 0, err
	}
	own, inode, err := po.check(root, r.ip, r.port)
	if own == portOwned {
		r.root = root
	}
	return own, inode, err
}

// noPIDs is the workloadPIDer of an executor that cannot name its
// workload's processes: there is never one, so whatever listens on the
// port is foreign.
type noPIDs struct{}

func (noPIDs) workloadPID(context.Context, string, int) (int, error) { return 0, nil }

// drain says the replica is draining, waits DrainDelay (or for the
// workload to exit), and returns.
func (r *replica) drain(ctx context.Context, exited <-chan struct{}) {
	r.endpoint.State = store.EndpointDraining
	r.put(ctx)
	_ = queue.Notify(ctx, r.w.rdb, queue.ChannelRouting)
	t := time.NewTimer(r.w.cfg.DrainDelay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-exited:
	}
}

// put writes the endpoint as it is now.
func (r *replica) put(ctx context.Context) {
	r.endpoint.UpdatedAt = r.w.now().UTC()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := r.w.store.PutEndpoint(pctx, r.endpoint); err != nil {
		r.w.logger.WarnContext(ctx, "write the replica's endpoint", slog.String("job_id", r.endpoint.JobID), slog.Any("error", err))
	}
}

// remove removes the endpoint and wakes the routers.
func (r *replica) remove(ctx context.Context) {
	cleanup, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.w.store.RemoveEndpoint(cleanup, r.endpoint.JobID, r.endpoint.Attempt); err != nil {
		r.w.logger.WarnContext(cleanup, "remove the replica's endpoint", slog.String("job_id", r.endpoint.JobID), slog.Any("error", err))
	}
	_ = queue.Notify(cleanup, r.w.rdb, queue.ChannelRouting)
}

// readiness is a replica's readiness as its probes tell it: ready on the
// first success, back to starting after probeFailures failures in a row.
type readiness struct {
	ready bool
	fails int
}

// observe takes one probe's result and says the state, and whether it
// changed.
func (rd *readiness) observe(ok bool) (store.EndpointState, bool) {
	was := rd.ready
	switch {
	case ok:
		rd.ready, rd.fails = true, 0
	case rd.ready:
		rd.fails++
		if rd.fails >= probeFailures {
			rd.ready, rd.fails = false, 0
		}
	}
	state := store.EndpointStarting
	if rd.ready {
		state = store.EndpointReady
	}
	return state, rd.ready != was
}

// lost takes the replica back to starting at once, and says whether that
// changed its state.
func (rd *readiness) lost() (store.EndpointState, bool) {
	was := rd.ready
	rd.ready, rd.fails = false, 0
	return store.EndpointStarting, was
}

// interval is the wait before the next probe: fast until ready.
func (rd *readiness) interval() time.Duration {
	if rd.ready {
		return probeSlow
	}
	return probeFast
}

// newProbeClient is the readiness probe's client. A redirect is not
// followed: the replica runs a job's code, which must not point its
// worker's requests anywhere else (a 3xx is not ready).
func newProbeClient() *http.Client {
	return &http.Client{Timeout: probeTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// probeOnce reports whether url answers GET with 200.
func probeOnce(ctx context.Context, client *http.Client, url string) bool {
	return probe(ctx, client, url) == nil
}

// probe says why url did not answer GET with 200; nil when it did.
func probe(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// fetchModel puts the files of the service's model version into the
// worker's model cache, checked against svc.SHA256 (and the registry's),
// and returns the cached folder; file is the file's name for a file
// version, "" for a folder. A cached copy is checked again before it is
// used (a host process may have written to it).
func (w *Worker) fetchModel(ctx context.Context, ws string, svc *api.Service) (dir, file string, err error) {
	ref := fmt.Sprintf("%s:%d", svc.Model, svc.Version)
	mv, err := w.store.ModelVersion(ctx, ws, svc.Model, svc.Version)
	if errors.Is(err, store.ErrNotFound) {
		return "", "", fmt.Errorf("%w: model %s is not in the registry", errInputUnavailable, ref)
	}
	if err != nil {
		return "", "", fmt.Errorf("model %s: %w", ref, err)
	}
	if svc.SHA256 != "" && !strings.EqualFold(svc.SHA256, mv.SHA256) {
		return "", "", fmt.Errorf("%w: model %s: the registry's sha256 %s is not the deployment's %s", errInputUnavailable, ref, mv.SHA256, svc.SHA256)
	}
	want := strings.ToLower(cmp.Or(svc.SHA256, mv.SHA256))
	c := modelCache{root: w.cfg.ModelCacheDir, arts: w.artifacts, kind: mv.Kind}
	dir, err = c.get(ctx, artifact.ModelPrefix(ws, svc.Model, svc.Version), filepath.Join(ws, svc.Model, strconv.Itoa(svc.Version)+"-"+want), want)
	if err != nil {
		if errors.Is(err, errModelDigest) || errors.Is(err, artifact.ErrNotFound) {
			return "", "", fmt.Errorf("%w: model %s: %s", errInputUnavailable, ref, modelDetail(err))
		}
		return "", "", fmt.Errorf("model %s: %w", ref, err)
	}
	if mv.Kind == api.ModelFileKind {
		// The one file a file version holds is the folder's.
		entries, err := os.ReadDir(dir)
		if err != nil || len(entries) != 1 {
			return "", "", fmt.Errorf("model %s: cached file version: %d files (%v)", ref, len(entries), err)
		}
		file = entries[0].Name()
	}
	return dir, file, nil
}

// errModelDigest means the files of a model version are not the ones its
// SHA-256 names.
var errModelDigest = errors.New("model files do not match their sha256")

func modelDetail(err error) string {
	if errors.Is(err, errModelDigest) {
		return "its files in the artifact store do not match its sha256"
	}
	return "its files are not in the artifact store"
}

// modelCache is a folder of model versions fetched from the artifact
// store, each in a folder of its own named after its digest, moved into
// place only once its files were checked.
type modelCache struct {
	root string
	arts artifact.Store
	kind api.ModelKind
}

// get returns the cached folder rel holding the files below prefix, whose
// digest (ModelDigest of c.kind) must be want: fetched when it is not cached, or
// when the cached copy no longer matches.
func (c modelCache) get(ctx context.Context, prefix, rel, want string) (string, error) {
	dir := filepath.Join(c.root, rel)
	if got, err := ModelDigest(dir, c.kind); err == nil && got == want {
		return dir, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".fetch-")
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	keys, err := c.arts.List(ctx, prefix)
	if err != nil {
		return "", fmt.Errorf("list %s: %w", prefix, err)
	}
	if len(keys) == 0 {
		return "", fmt.Errorf("%s: %w", prefix, artifact.ErrNotFound)
	}
	for _, k := range keys {
		if err := c.fetch(ctx, k, filepath.Join(tmp, filepath.FromSlash(strings.TrimPrefix(k, prefix)))); err != nil {
			return "", err
		}
	}
	got, err := ModelDigest(tmp, c.kind)
	if err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	if got != want {
		return "", fmt.Errorf("%s: %w: got %s, want %s", prefix, errModelDigest, got, want)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", fmt.Errorf("model cache: %w", err)
	}
	// A stale copy goes; another replica that fetched the same meanwhile
	// wins the rename, and its copy is as good.
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		if got, derr := ModelDigest(dir, c.kind); derr == nil && got == want {
			return dir, nil
		}
		return "", fmt.Errorf("model cache: %w", err)
	}
	return dir, nil
}

// fetch copies the blob key to the file dst.
func (c modelCache) fetch(ctx context.Context, key, dst string) error {
	r, err := c.arts.Open(ctx, key)
	if err != nil {
		return fmt.Errorf("open %s: %w", key, err)
	}
	defer r.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("copy %s: %w", key, err)
	}
	return f.Close()
}

// ModelDigest is the SHA-256 (hex) of the model version of kind in dir,
// as the registry computes it (api.ModelVersion.SHA256): for a file
// version (dir holds its one file), the digest of its bytes; for a folder,
// the digest of the lines "<sha256 of the file>  <relative path>\n", one per
// file, sorted by path in byte order.
func ModelDigest(dir string, kind api.ModelKind) (string, error) {
	files, err := modelFiles(dir)
	if err != nil {
		return "", err
	}
	if len(files) == 0 {
		return "", fmt.Errorf("%s: no files", dir)
	}
	if kind == api.ModelFileKind {
		if len(files) != 1 {
			return "", fmt.Errorf("%s: a file version holds one file, not %d", dir, len(files))
		}
		return fileSHA256(filepath.Join(dir, filepath.FromSlash(files[0])))
	}
	folder := sha256.New()
	for _, rel := range files {
		sum, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(rel)))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(folder, "%s  %s\n", sum, rel)
	}
	return hex.EncodeToString(folder.Sum(nil)), nil
}

// modelFiles lists the regular files below dir, relative, slash-separated,
// sorted in byte order.
func modelFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !e.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	// WalkDir walks in lexical order of each folder's names, which is not
	// the byte order of whole paths ("a/b" vs "a-b"): sort them.
	slices.Sort(out)
	return out, err
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
