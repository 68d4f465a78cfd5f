package gateway

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/deploy"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/traffic"
	"github.com/jobgate/jobgate/queue"
)

// Deployments (/v1/deployments). The API keeps a deployment's record (its
// spec, the model versions it resolved to, its revision) and wakes the
// deployment controller (internal/deploy), which keeps the replicas; what
// GET shows of the replicas it reads from the controller's slots, the jobs
// and the workers' endpoints. A spec is checked here as the replica's job
// will be (job.Service.ValidateService), so a deployment that is accepted
// makes jobs that are.

var deploymentNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// Bounds of a deployment spec.
const (
	maxReplicas       = 100
	maxTrafficTargets = 16
	maxScaleDownDelay = 7 * 24 * 3600
	// writeAttempts bounds how often a write that lost a race with
	// another is made again.
	writeAttempts = 8
)

// deployedModels is the modelUsers of the store's deployments: a version a
// deployment serves, or rolls away from, is in use.
type deployedModels struct{ st *store.Store }

func (d deployedModels) ModelVersionInUse(ctx context.Context, ws, name string, version int) (string, error) {
	by, err := d.st.ModelVersionDeployed(ctx, ws, name, version)
	if by != "" {
		by = "deployment " + by
	}
	return by, err
}

var _ modelUsers = deployedModels{}

// createDeployment serves POST /v1/deployments.
func (g *Gateway) createDeployment(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	var spec api.DeploymentSpec
	if err := decodeBody(c, &spec); err != nil {
		return err
	}
	if !deploymentNameRE.MatchString(spec.Name) {
		return specErr("name %q must be 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit (it is the model name clients score: /v2/models/{name}/infer)", spec.Name)
	}
	var d store.DeploymentRecord
	var targets []api.DeploymentTarget
	for attempt := 0; ; attempt++ {
		s := spec
		var err error
		if targets, err = g.checkDeployment(ctx, ws, &s); err != nil {
			return err
		}
		now := g.now().UTC()
		d = store.DeploymentRecord{Workspace: ws, Spec: s, Targets: targets, Revision: 1, CreatedAt: now, UpdatedAt: now}
		// Written only while the versions it resolved exist (a delete of
		// one may have come between): else resolved again.
		err = g.store.PutDeploymentIf(ctx, d, nil)
		if errors.Is(err, store.ErrConflict) {
			return api.Errorf(api.CodeConflict, "deployment %q exists; change it with PATCH /v1/deployments/%s", spec.Name, spec.Name)
		}
		if errors.Is(err, store.ErrNotFound) && attempt < writeAttempts {
			continue
		}
		if err != nil {
			return err
		}
		spec = s
		break
	}
	_ = queue.Notify(ctx, g.rdb, queue.ChannelDeploy)
	g.audit(c, ws, "deployment.create", fmt.Sprintf("%s (%s, revision 1)", spec.Name, describeTargets(targets)))
	v, err := g.deploymentView(ctx, &d, store.DeploymentState{})
	if err != nil {
		return err
	}
	c.Response().Header().Set("Location", "/v1/deployments/"+spec.Name)
	return c.JSON(http.StatusCreated, v)
}

// listDeployments serves GET /v1/deployments.
func (g *Gateway) listDeployments(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	names, err := g.store.DeploymentNames(ctx, ws)
	if err != nil {
		return err
	}
	out := api.DeploymentList{Deployments: []api.Deployment{}}
	for _, n := range names {
		d, st, err := g.store.Deployment(ctx, ws, n[1])
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		v, err := g.deploymentView(ctx, d, st)
		if err != nil {
			return err
		}
		out.Deployments = append(out.Deployments, v)
	}
	return c.JSON(http.StatusOK, out)
}

// getDeployment serves GET /v1/deployments/:name.
func (g *Gateway) getDeployment(c echo.Context) error {
	ctx := c.Request().Context()
	d, st, err := g.deployment(ctx, principalOf(c).Workspace, c.Param("name"))
	if err != nil {
		return err
	}
	v, err := g.deploymentView(ctx, d, st)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// patchDeployment serves PATCH /v1/deployments/:name: a change of model,
// traffic, image, command, env or resources is a new revision, which the
// controller rolls out; a change of replicas or autoscale only scales.
func (g *Gateway) patchDeployment(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	var p api.DeploymentPatch
	if err := decodeBody(c, &p); err != nil {
		return err
	}
	var d *store.DeploymentRecord
	var targets []api.DeploymentTarget
	var action string
	for attempt := 0; ; attempt++ {
		var err error
		d, _, err = g.deployment(ctx, ws, c.Param("name"))
		if err != nil {
			return err
		}
		if d.Deleting {
			return api.Errorf(api.CodeConflict, "deployment %q is being deleted", d.Spec.Name)
		}
		prev := *d
		spec := d.Spec
		spec.Command, spec.Env, spec.Traffic = slices.Clone(spec.Command), maps.Clone(spec.Env), maps.Clone(spec.Traffic)
		if p.Model != nil && p.Traffic != nil {
			return specErr("model, traffic: give one: a model, or a traffic split")
		}
		if p.Replicas != nil && p.Autoscale != nil {
			return specErr("replicas, autoscale: give one: a fixed replica count, or autoscale")
		}
		if p.Model != nil {
			spec.Model, spec.Traffic = *p.Model, nil
		}
		if p.Traffic != nil {
			spec.Model, spec.Traffic = "", p.Traffic
		}
		if p.Image != nil {
			spec.Image = *p.Image
		}
		if p.Command != nil {
			spec.Command = p.Command
		}
		if p.Env != nil {
			spec.Env = p.Env
		}
		if p.Resources != nil {
			spec.Resources = *p.Resources
		}
		if p.Replicas != nil {
			spec.Replicas, spec.Autoscale = p.Replicas, nil
		}
		if p.Autoscale != nil {
			spec.Replicas, spec.Autoscale = nil, p.Autoscale
		}
		targets, err = g.checkDeployment(ctx, ws, &spec)
		if err != nil {
			return err
		}
		rollout := !reflect.DeepEqual(targets, d.Targets) || spec.Image != d.Spec.Image || !slices.Equal(spec.Command, d.Spec.Command) ||
			!maps.Equal(spec.Env, d.Spec.Env) || spec.Resources != d.Spec.Resources
		action = "deployment.scale"
		if rollout {
			d.Revision++
			action = "deployment.update"
		}
		d.Spec, d.Targets, d.UpdatedAt = spec, targets, g.now().UTC()
		// Written only if no other change came since it was read (a DELETE,
		// another PATCH) and the versions it resolved still exist: else all
		// of it again.
		err = g.store.PutDeploymentIf(ctx, *d, &prev)
		if (errors.Is(err, store.ErrDeploymentChanged) || errors.Is(err, store.ErrNotFound)) && attempt < writeAttempts {
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	_ = queue.Notify(ctx, g.rdb, queue.ChannelDeploy)
	g.audit(c, ws, action, fmt.Sprintf("%s (%s, revision %d)", d.Spec.Name, describeTargets(targets), d.Revision))
	_, st, err := g.store.Deployment(ctx, ws, d.Spec.Name)
	if err != nil {
		return err
	}
	v, err := g.deploymentView(ctx, d, st)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

// deleteDeployment serves DELETE /v1/deployments/:name: 202, and the
// controller drains and stops every replica, then forgets the deployment.
func (g *Gateway) deleteDeployment(c echo.Context) error {
	ctx := c.Request().Context()
	ws := principalOf(c).Workspace
	d, st, err := g.deployment(ctx, ws, c.Param("name"))
	if err != nil {
		return err
	}
	for attempt := 0; !d.Deleting; attempt++ {
		prev := *d
		d.Deleting, d.UpdatedAt = true, g.now().UTC()
		// Not over a change that came since it was read (a PATCH).
		err := g.store.PutDeploymentIf(ctx, *d, &prev)
		if errors.Is(err, store.ErrDeploymentChanged) && attempt < writeAttempts {
			if d, st, err = g.deployment(ctx, ws, c.Param("name")); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		_ = queue.Notify(ctx, g.rdb, queue.ChannelDeploy)
		g.audit(c, ws, "deployment.delete", d.Spec.Name)
	}
	v, err := g.deploymentView(ctx, d, st)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

// deployment is deployment name of ws, or a 404.
func (g *Gateway) deployment(ctx context.Context, ws, name string) (*store.DeploymentRecord, store.DeploymentState, error) {
	if !deploymentNameRE.MatchString(name) {
		return nil, store.DeploymentState{}, api.Errorf(api.CodeNotFound, "no deployment %q", name)
	}
	d, st, err := g.store.Deployment(ctx, ws, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, st, api.Errorf(api.CodeNotFound, "no deployment %q", name)
	}
	return d, st, err
}

// checkDeployment checks spec for workspace ws, fills its defaults and
// resolves its model or traffic into targets. A refusal names the field.
func (g *Gateway) checkDeployment(ctx context.Context, ws string, spec *api.DeploymentSpec) ([]api.DeploymentTarget, error) {
	targets, err := g.resolveTargets(ctx, ws, spec)
	if err != nil {
		return nil, err
	}
	switch {
	case spec.Replicas != nil && spec.Autoscale != nil:
		return nil, specErr("replicas, autoscale: give one: a fixed replica count, or autoscale")
	case spec.Replicas != nil && (*spec.Replicas < 0 || *spec.Replicas > maxReplicas):
		return nil, specErr("replicas must be between 0 and %d, not %d", maxReplicas, *spec.Replicas)
	case spec.Autoscale != nil:
		a := spec.Autoscale
		switch {
		case a.Min < 0:
			return nil, specErr("autoscale.min must be 0 or more, not %d", a.Min)
		case a.Max < 1 || a.Max > maxReplicas:
			return nil, specErr("autoscale.max must be between 1 and %d, not %d", maxReplicas, a.Max)
		case a.Min > a.Max:
			return nil, specErr("autoscale.min (%d) must not be above autoscale.max (%d)", a.Min, a.Max)
		case a.TargetConcurrency < 0:
			return nil, specErr("autoscale.target_concurrency must be more than 0 (default %d), not %d", deploy.DefaultTargetConcurrency, a.TargetConcurrency)
		case a.ScaleDownDelaySeconds < 0 || a.ScaleDownDelaySeconds > maxScaleDownDelay:
			return nil, specErr("autoscale.scale_down_delay_seconds must be between 0 (default %d) and %d, not %d", deploy.DefaultScaleDownDelaySeconds, maxScaleDownDelay, a.ScaleDownDelaySeconds)
		}
	}
	if p := spec.ReadinessPath; p != "" && (!strings.HasPrefix(p, "/") || len(p) > 1024 || strings.ContainsAny(p, " \x00\r\n#?")) {
		return nil, specErr("readiness_path %q must be a URL path starting with /, like %s", p, deploy.DefaultReadinessPath)
	}
	if spec.Image == "" {
		return nil, specErr("image is required: the model server's image, like localhost/jobgate-examples:latest")
	}
	if len(spec.Command) == 0 {
		return nil, specErr("command is required: the model server's argv, like [\"/bin/modelserver\"]")
	}
	// The replica's job must pass as any job: image, command, env,
	// resources, priority, the workspace's rules, a worker that could run it.
	js := deploy.ReplicaSpec(*spec, targets[0], 1, "r0000000")
	if err := g.jobs.ValidateService(ctx, ws, &js); err != nil {
		var je *job.Error
		if errors.As(err, &je) && strings.HasPrefix(je.Field, "service.") {
			return nil, specErr("%s", strings.TrimPrefix(je.Message, "service."))
		}
		return nil, err
	}
	return targets, nil
}

// resolveTargets resolves spec's model, or each version of its traffic
// split, into the versions it serves.
func (g *Gateway) resolveTargets(ctx context.Context, ws string, spec *api.DeploymentSpec) ([]api.DeploymentTarget, error) {
	if (spec.Model == "") == (len(spec.Traffic) == 0) {
		return nil, specErr("model or traffic is required, not both: \"model\": \"iris:1\" (or \"iris@production\"), or \"traffic\": {\"iris:1\": 90, \"iris:2\": 10}")
	}
	if spec.Model != "" {
		t, err := g.resolveTarget(ctx, ws, "model", spec.Model)
		if err != nil {
			return nil, err
		}
		t.Weight = 100
		return []api.DeploymentTarget{t}, nil
	}
	if len(spec.Traffic) > maxTrafficTargets {
		return nil, specErr("traffic has %d versions; at most %d", len(spec.Traffic), maxTrafficTargets)
	}
	var out []api.DeploymentTarget
	sum := 0
	for _, ref := range slices.Sorted(maps.Keys(spec.Traffic)) {
		w := spec.Traffic[ref]
		if w < 1 || w > 100 {
			return nil, specErr("traffic.%s must be a percent from 1 to 100, not %d", ref, w)
		}
		t, err := g.resolveTarget(ctx, ws, "traffic."+ref, ref)
		if err != nil {
			return nil, err
		}
		for _, o := range out {
			if o.Model == t.Model && o.Version == t.Version {
				return nil, specErr("traffic: %s and %s name the same version (%s:%d)", o.Ref, ref, t.Model, t.Version)
			}
		}
		t.Weight = w
		sum += w
		out = append(out, t)
	}
	if sum != 100 {
		return nil, specErr("traffic: the percents sum to %d, not 100", sum)
	}
	return out, nil
}

func (g *Gateway) resolveTarget(ctx context.Context, ws, field, ref string) (api.DeploymentTarget, error) {
	if _, err := api.ParseModelRef(ref); err != nil {
		return api.DeploymentTarget{}, specErr("%s: %v", field, err)
	}
	mv, err := g.store.ResolveModel(ctx, ws, ref)
	if errors.Is(err, store.ErrNotFound) {
		return api.DeploymentTarget{}, specErr("%s: no model version %s in this workspace (GET /v1/models)", field, ref)
	}
	if err != nil {
		return api.DeploymentTarget{}, err
	}
	return api.DeploymentTarget{Ref: ref, Model: mv.Name, Version: mv.Version, SHA256: mv.SHA256}, nil
}

func describeTargets(ts []api.DeploymentTarget) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s:%d", t.Model, t.Version)
		if len(ts) > 1 {
			parts[i] += fmt.Sprintf(" %d%%", t.Weight)
		}
	}
	return strings.Join(parts, ", ")
}

// deploymentView is a deployment as the API shows it, with its replicas
// from the controller's slots, their jobs and the workers' endpoints.
func (g *Gateway) deploymentView(ctx context.Context, d *store.DeploymentRecord, st store.DeploymentState) (api.Deployment, error) {
	v := api.Deployment{Name: d.Spec.Name, Workspace: d.Workspace, Spec: d.Spec, Targets: d.Targets, Revision: d.Revision,
		Status: st.Status, Reason: st.Reason, Replicas: []api.Replica{},
		ScoringPath: "/v2/models/" + d.Spec.Name + "/infer", CreatedAt: d.CreatedAt, UpdatedAt: d.UpdatedAt}
	if v.Status == "" {
		v.Status, v.Reason = api.DeploymentDeploying, "waiting for the deployment controller"
	}
	if d.Deleting {
		v.Status = api.DeploymentDeleting
	}
	desired := st.Desired
	if st.Status == "" {
		switch {
		case d.Spec.Replicas != nil:
			desired = *d.Spec.Replicas
		case d.Spec.Autoscale != nil:
			desired = min(max(d.Spec.Autoscale.Min, 1), d.Spec.Autoscale.Max)
		default:
			desired = deploy.DefaultReplicas
		}
	}
	v.DesiredReplicas = desired * len(d.Targets)
	slots, err := g.store.ReplicaSlots(ctx, d.Workspace, d.Spec.Name)
	if err != nil {
		return v, err
	}
	var ids []string
	for _, s := range slots {
		if s.JobID != "" {
			ids = append(ids, s.JobID)
		}
	}
	jobs, err := g.store.JobsOf(ctx, d.Workspace, ids)
	if err != nil {
		return v, err
	}
	dep := traffic.Deployment{Workspace: d.Workspace, Name: d.Spec.Name}
	measured, err := traffic.Read(ctx, g.rdb, g.now(), dep)
	if err != nil {
		return v, err
	}
	v.Traffic = measured[dep]
	eps, err := g.store.Endpoints(ctx, ids...)
	if err != nil {
		return v, err
	}
	for _, s := range slots {
		var ep *store.Endpoint
		for i := range eps {
			if eps[i].JobID == s.JobID {
				ep = &eps[i]
			}
		}
		j := jobs[s.JobID]
		state, reason := deploy.ReplicaState(s, j, ep)
		r := api.Replica{ID: s.ID, JobID: s.JobID, Revision: s.Revision, Model: s.Model, Version: s.Version, State: state,
			Restarts: s.Restarts, Reason: cmp.Or(reason, s.Reason)}
		if state == api.ReplicaReady || state == api.ReplicaDraining {
			r.Reason = ""
		}
		if ep != nil {
			r.Worker, r.Address = ep.Worker, ep.Address
		} else if j != nil {
			r.Worker = j.Worker
		}
		if state == api.ReplicaReady {
			v.ReadyReplicas++
		}
		v.Replicas = append(v.Replicas, r)
	}
	// The controller's status is of its last pass: a change made since
	// (a PATCH's new revision) is not ready until its replicas are. A
	// draining replica is on its way out, as the controller counts it.
	if v.Status == api.DeploymentReady {
		for _, r := range v.Replicas {
			if r.Revision != d.Revision && r.State != api.ReplicaDraining {
				v.Status, v.Reason = api.DeploymentDeploying, fmt.Sprintf("rolling update to revision %d", d.Revision)
				break
			}
		}
	}
	return v, nil
}
