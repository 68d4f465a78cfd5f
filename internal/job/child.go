package job

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/jobgate/jobgate/api"
)

// checkChild applies the rule for a job submitted with a job's own token
// (JOBGATE_JOB_TOKEN): the child may ask for nothing the token's job lacks.
// It is compared with that job (byJob), not with the
// parent it names, which may be a descendant someone else submitted with
// more. A refusal is a 403 naming the field:
//
//   - mode process only if the job is a process job;
//   - secrets: only secrets (by name) the job has itself;
//   - inputs: only datastores the job has as inputs, at the job's path or
//     below it; ro_mount only where the job has ro_mount (for a host
//     process it is the host folder itself), download where it has either.
//     Each input gets Within, the covering paths, so the worker refuses
//     data that a link leads out of them to;
//   - priority no higher than the job's;
//   - notify only to the job's own callback URL (an empty secret takes the
//     job's secret);
//   - user: the job's, if it has one (a child that names none inherits it);
//     read_only_rootfs: inherited, a child of a read-only job is read-only.
//
// spec is changed only by what it inherits and its inputs' Within; the
// caller checks the rest of it as for any job.
func (s *Service) checkChild(ctx context.Context, ws, byJob string, spec *api.JobSpec) error {
	own, err := s.store.GetJob(ctx, ws, byJob)
	if err != nil {
		return err
	}
	js := own.Spec
	if spec.User == "" {
		spec.User = js.User
	}
	if js.ReadOnlyRootfs {
		spec.ReadOnlyRootfs = true
	}
	if n := spec.Notify; n != nil && n.Secret == "" && js.Notify != nil && n.URL == js.Notify.URL {
		inherited := *n
		inherited.Secret = js.Notify.Secret
		spec.Notify = &inherited
	}
	deny := func(field, format string, args ...any) error {
		return Errorf(api.CodeForbidden, field, format+" (a job token submits only children that ask for nothing its job %s lacks)", append(args, own.ID)...)
	}
	if spec.Notify != nil && (js.Notify == nil || spec.Notify.URL != js.Notify.URL) {
		return deny("notify.url", "notify.url: a child may call back only the job's own notify URL")
	}
	// Compare with the defaults filled in (mode, priority, input modes), on
	// a copy: Validate normalizes the spec itself later.
	c := *spec
	c.Inputs = maps.Clone(spec.Inputs)
	if err := normalize(&c, s.cfg.Limits, false); err != nil {
		return err
	}
	if c.Mode == api.ModeProcess && js.Mode != api.ModeProcess {
		return deny("mode", "mode: process, but the job is a %s job", js.Mode)
	}
	has := map[string]bool{}
	for _, name := range js.Secrets {
		has[name] = true
	}
	for _, env := range slices.Sorted(maps.Keys(c.Secrets)) {
		if !has[c.Secrets[env]] {
			return deny("secrets."+env, "secrets.%s: secret %q is not one of the job's secrets", env, c.Secrets[env])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Inputs)) {
		in := c.Inputs[name]
		cover, ok := inputCovered(in, js.Inputs)
		if !ok {
			return deny("inputs."+name, "inputs.%s: %s of datastore %q path %q is not within the job's own inputs", name, in.Mode, in.Datastore, in.Path)
		}
		// The path is checked as written; a link below the job's path may
		// lead elsewhere in the datastore, where the job's own mount does
		// not reach. The worker resolves it and checks it against these.
		within := slices.Clone(cover.Within)
		if cover.Path != "" {
			within = append(within, cover.Path)
		}
		orig := spec.Inputs[name]
		orig.Within = within
		spec.Inputs[name] = orig
	}
	if priorityLevel(c.Priority) > priorityLevel(js.Priority) {
		return deny("priority", "priority: %s is above the job's %s", c.Priority, js.Priority)
	}
	if js.User != "" && c.User != js.User {
		return deny("user", "user: the job runs as %q; so must its children", js.User)
	}
	return nil
}

// inputCovered returns the job's input that covers in: the same datastore
// at in's path or above it, and ro_mount only where the job has ro_mount
// (download, a private copy, is covered by either). ok is false when none
// does. Of several, the widest wins (the shortest path, then the first
// name), so the answer is the same each time.
func inputCovered(in api.Input, job map[string]api.Input) (cover api.Input, ok bool) {
	for _, name := range slices.Sorted(maps.Keys(job)) {
		j := job[name]
		if j.Datastore != in.Datastore {
			continue
		}
		below := j.Path == "" || in.Path == j.Path || strings.HasPrefix(in.Path, j.Path+"/")
		mode := in.Mode == api.InputDownload || j.Mode == api.InputReadOnlyMount || j.Mode == ""
		if below && mode && (!ok || len(j.Path) < len(cover.Path)) {
			cover, ok = j, true
		}
	}
	return cover, ok
}

// priorityLevel orders priorities, low below normal below high.
func priorityLevel(p api.Priority) int {
	switch p {
	case api.PriorityHigh:
		return 2
	case api.PriorityLow:
		return 0
	}
	return 1
}
