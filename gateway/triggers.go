package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/job"
	"github.com/jobgate/jobgate/internal/store"
	"github.com/jobgate/jobgate/internal/tmpl"
	"github.com/jobgate/jobgate/internal/webhook"
)

// Webhook triggers: POST /hooks/{id} deliveries, authenticated by their
// signature alone, start a job made from the trigger's job template.
//
// A delivery goes: find the trigger (404) → read the body (413) → verify the
// signature (401; nothing is recorded, so forged deliveries cannot flood the
// history) → GitHub ping (200) → decode the payload (400) → filter (200
// ignored) → claim the delivery id, and for GitHub the body's hash, with SET
// NX (a redelivery, or GitHub's body replayed under a new delivery id, gets
// the first job back, 200) → render the template (422) → the job service (422),
// which completes the claims in the step that stores the job → 202. Every
// authenticated delivery is recorded in the trigger's history.

const (
	providerGitHub   = "github"
	providerStandard = "standard"

	hookIDPrefix = "trg_"
	// deliveryTTL is how long a delivery id keeps answering with its job.
	deliveryTTL = 24 * time.Hour
	// deliveryClaimHold bounds how long a delivery stays "being processed"
	// if the gateway handling it dies before it made the job (the job and
	// the claims' completion are one Redis step).
	deliveryClaimHold = time.Minute
	// duplicateWait is how long a concurrent duplicate waits for the first
	// delivery of its id to make its job before answering 409.
	duplicateWait = 10 * time.Second
	// minTriggerSecretBytes: shorter HMAC keys can be guessed offline from
	// one captured delivery.
	minTriggerSecretBytes = 16
	maxTriggerSecretBytes = 1024
	maxDeliveryIDBytes    = 256

	// defaultSecretGraceSeconds keeps a rotated-out secret for a day: GitHub
	// redelivers a failed delivery, signed as it first was, for that long.
	defaultSecretGraceSeconds = 86400
	maxSecretGraceSeconds     = 30 * 86400
)

// hookIDRE matches what newHookID makes: the prefix and 128 random bits in
// lower-case base32.
var hookIDRE = regexp.MustCompile(`^trg_[a-z2-7]{26}$`)

// newHookID is hookIDPrefix and 128 random bits: the hook URL is not a
// credential (deliveries are signed), but an unguessable one keeps strangers
// from probing triggers.
func newHookID() string {
	b := make([]byte, 16)
	rand.Read(b) // never returns an error; it crashes the program instead
	return hookIDPrefix + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

type triggerRequest struct {
	Name     string `json:"name"`
	Provider string `json:"provider"`
	// Secret signs deliveries: any string of 16+ bytes for GitHub, a whsec_
	// secret for Standard Webhooks.
	Secret string `json:"secret"`
	// PreviousSecret is also accepted, while the sender moves to Secret.
	PreviousSecret string              `json:"previous_secret,omitempty"`
	Filter         store.TriggerFilter `json:"filter"`
	// RawJob is the job template as sent; Job is it read by the spec
	// decoder (decodeSpec), nil when there is none.
	RawJob json.RawMessage `json:"job"`
	Job    *api.JobSpec    `json:"-"`
}

// viewTrigger is a trigger as the API shows it at now: no secrets, and
// previous_secret_until only while that secret is still accepted.
func viewTrigger(t store.Trigger, now time.Time) api.Trigger {
	redactSpec(&t.Job)
	v := api.Trigger{ID: t.ID, Name: t.Name, Provider: t.Provider, HookURL: "/hooks/" + t.ID,
		Filter: api.TriggerFilter(t.Filter), Job: t.Job, CreatedAt: t.CreatedAt, UpdatedAt: timePtr(t.UpdatedAt)}
	if now.Before(t.PreviousSecretUntil) {
		v.PreviousSecretUntil = timePtr(t.PreviousSecretUntil)
	}
	return v
}

// triggerSecretName binds a trigger's sealed secrets to its workspace and
// name; secret names cannot hold ':', so it never meets a workspace secret.
func triggerSecretName(name string) string { return "trigger:" + name }

func (g *Gateway) createTrigger(c echo.Context) error {
	if g.secrets == nil {
		return api.Errorf(api.CodeUnavailable, "triggers need the secrets key to store their signing secrets (start the gateway with --secrets-key-file)")
	}
	var req triggerRequest
	if err := decodeBody(c, &req); err != nil {
		return err
	}
	if raw := bytes.TrimSpace(req.RawJob); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		spec, err := decodeSpec(bytes.NewReader(raw))
		if err != nil {
			return inJob(err)
		}
		req.Job = &spec
	}
	ctx, ws := c.Request().Context(), principalOf(c).Workspace
	if err := g.checkTrigger(ctx, ws, req); err != nil {
		return err
	}
	secrets := []string{req.Secret}
	if req.PreviousSecret != "" {
		secrets = append(secrets, req.PreviousSecret)
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return err
	}
	sealed, err := g.secrets.Seal(ws, triggerSecretName(req.Name), plain)
	if err != nil {
		return err
	}
	t := store.Trigger{ID: newHookID(), Workspace: ws, Name: req.Name, Provider: req.Provider,
		Filter: req.Filter, Job: *req.Job, CreatedAt: g.now().UTC(), SealedSecrets: sealed}
	if err := g.store.CreateTrigger(ctx, t); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return api.Errorf(api.CodeConflict, "trigger %q exists; delete it first to replace it", req.Name)
		}
		return err
	}
	g.audit(c, ws, "trigger.create", t.Name)
	c.Response().Header().Set("Location", "/v1/triggers/"+t.Name)
	return c.JSON(http.StatusCreated, viewTrigger(t, g.now()))
}

// checkTrigger validates a trigger request. The job template is checked
// without a payload (checkTriggerJob).
func (g *Gateway) checkTrigger(ctx context.Context, ws string, req triggerRequest) error {
	if !nameRE.MatchString(req.Name) {
		return invalid("name %q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", req.Name)
	}
	if req.Provider != providerGitHub && req.Provider != providerStandard {
		return invalid("provider must be %q or %q, not %q", providerGitHub, providerStandard, req.Provider)
	}
	if err := checkTriggerSecret(req.Provider, "secret", req.Secret); err != nil {
		return err
	}
	if req.PreviousSecret != "" {
		if err := checkTriggerSecret(req.Provider, "previous_secret", req.PreviousSecret); err != nil {
			return err
		}
	}
	if err := checkTriggerFilter(req.Filter); err != nil {
		return err
	}
	if req.Job == nil {
		return invalid("job is required: the job spec to submit on each delivery, with templates like {{ .payload.after }} in env values, tag values, command and preparation arguments")
	}
	return g.checkTriggerJob(ctx, ws, *req.Job)
}

// checkTriggerSecret checks a signing secret of a trigger of provider, given
// as field.
func checkTriggerSecret(provider, field, value string) error {
	switch provider {
	case providerGitHub:
		if len(value) < minTriggerSecretBytes || len(value) > maxTriggerSecretBytes {
			return invalid("%s must be %d to %d characters, the same as in GitHub's webhook settings (e.g. from `openssl rand -hex 32`)",
				field, minTriggerSecretBytes, maxTriggerSecretBytes)
		}
	case providerStandard:
		key, err := webhook.ParseSecret(value)
		if err != nil || len(key) < minTriggerSecretBytes || len(value) > maxTriggerSecretBytes {
			return invalid("%s must be a Standard Webhooks secret: whsec_ and the base64 of %d or more random bytes", field, minTriggerSecretBytes)
		}
	}
	return nil
}

func checkTriggerFilter(f store.TriggerFilter) error {
	if len(f.Event) > 128 || len(f.Ref) > 1024 || strings.ContainsFunc(f.Event+f.Ref, isControl) {
		return invalid("filter.event and filter.ref must be short text without control characters")
	}
	return nil
}

// checkTriggerJob checks a trigger's job template without a payload: env
// values and command arguments must be templates tmpl.Check accepts, and
// the spec, with those templates left as they are, must pass the job
// service's Validate. That catches every fault that does not depend on a
// payload (a bad image, a bad name, an unknown secret); what a rendering
// produces is checked again by the job service on each delivery, which
// answers 422 if it is wrong.
func (g *Gateway) checkTriggerJob(ctx context.Context, ws string, spec api.JobSpec) error {
	for i, a := range spec.Command {
		if err := tmpl.Check(a); err != nil {
			return specErr("job.command[%d]: %v", i, err)
		}
	}
	for i, a := range spec.Preparation {
		if err := tmpl.Check(a); err != nil {
			return specErr("job.preparation[%d]: %v", i, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		if err := tmpl.Check(spec.Env[k]); err != nil {
			return specErr("job.env.%s: %v", k, err)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(spec.Tags)) {
		if err := tmpl.Check(spec.Tags[k]); err != nil {
			return specErr("job.tags.%s: %v", k, err)
		}
	}
	literal := map[string]string{"image": spec.Image, "name": spec.Name, "experiment": spec.Experiment, "user": spec.User}
	if spec.Notify != nil {
		literal["notify.url"] = spec.Notify.URL
	}
	for _, k := range slices.Sorted(maps.Keys(literal)) {
		if strings.Contains(literal[k], "{{") {
			return specErr("job.%s is not a template: only env values, tag values, command and preparation arguments are rendered from the payload", k)
		}
	}
	return inJob(g.jobs.Validate(ctx, ws, &spec))
}

// inJob says that a refused spec is the job of a trigger or schedule.
func inJob(err error) error {
	var je *job.Error
	if errors.As(err, &je) {
		return &job.Error{Code: je.Code, Field: strings.TrimSuffix("job."+je.Field, "."), Message: "job: " + je.Message}
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		return api.Errorf(ae.Code, "job: %s", ae.Message)
	}
	return err
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func (g *Gateway) listTriggers(c echo.Context) error {
	ts, err := g.store.Triggers(c.Request().Context(), principalOf(c).Workspace)
	if err != nil {
		return err
	}
	slices.SortFunc(ts, func(a, b store.Trigger) int { return strings.Compare(a.Name, b.Name) })
	out := api.TriggerList{Triggers: make([]api.Trigger, 0, len(ts))}
	for _, t := range ts {
		out.Triggers = append(out.Triggers, viewTrigger(t, g.now()))
	}
	return c.JSON(http.StatusOK, out)
}

// triggerParam is the trigger :name of the principal's workspace; another
// workspace's trigger is 404, as if it did not exist.
func (g *Gateway) triggerParam(c echo.Context) (*store.Trigger, error) {
	name := c.Param("name")
	t, err := g.store.Trigger(c.Request().Context(), principalOf(c).Workspace, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeNotFound, "no trigger %q", name)
	}
	return t, err
}

func (g *Gateway) getTrigger(c echo.Context) error {
	t, err := g.triggerParam(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewTrigger(*t, g.now()))
}

func (g *Gateway) deleteTrigger(c echo.Context) error {
	ws, name := principalOf(c).Workspace, c.Param("name")
	if err := g.store.DeleteTrigger(c.Request().Context(), ws, name); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeNotFound, "no trigger %q", name)
		}
		return err
	}
	g.audit(c, ws, "trigger.delete", name)
	return c.NoContent(http.StatusNoContent)
}

// triggerPatchBody is api.TriggerPatch with the job kept as sent, for the
// spec decoder (decodeSpec), as on create.
type triggerPatchBody struct {
	api.TriggerPatch
	RawJob json.RawMessage `json:"job,omitempty"`
}

// patchTrigger serves PATCH /v1/triggers/:name (api.TriggerPatch): each
// field given replaces the trigger's, checked as on create; the ID and hook
// URL stay. A new secret is accepted at once, and the one it replaces for
// secret_grace_seconds more. An empty patch ({}) changes nothing and
// answers the trigger, as PATCH /v1/deployments/:name does.
func (g *Gateway) patchTrigger(c echo.Context) error {
	var body triggerPatchBody
	if err := decodeBody(c, &body); err != nil {
		return err
	}
	p := body.TriggerPatch
	if raw := bytes.TrimSpace(body.RawJob); len(raw) > 0 && !bytes.Equal(raw, []byte("null")) {
		spec, err := decodeSpec(bytes.NewReader(raw))
		if err != nil {
			return inJob(err)
		}
		p.Job = &spec
	}
	if p.SecretGraceSeconds != nil && p.Secret == "" {
		return invalid("secret_grace_seconds is how long the secret a rotation replaces stays valid: give it with secret")
	}
	grace := defaultSecretGraceSeconds
	if p.SecretGraceSeconds != nil {
		grace = *p.SecretGraceSeconds
		if grace < 0 || grace > maxSecretGraceSeconds {
			return invalid("secret_grace_seconds must be 0 (the replaced secret ends at once) to %d (30 days), not %d", maxSecretGraceSeconds, grace)
		}
	}
	ctx, ws := c.Request().Context(), principalOf(c).Workspace
	cur, err := g.triggerParam(c)
	if err != nil {
		return err
	}
	var changed []string
	if p.Filter != nil {
		if err := checkTriggerFilter(store.TriggerFilter(*p.Filter)); err != nil {
			return err
		}
		changed = append(changed, "filter")
	}
	if p.Job != nil {
		if err := g.checkTriggerJob(ctx, ws, *p.Job); err != nil {
			return err
		}
		changed = append(changed, "job")
	}
	if p.Secret != "" {
		if err := checkTriggerSecret(cur.Provider, "secret", p.Secret); err != nil {
			return err
		}
		if g.secrets == nil {
			return api.Errorf(api.CodeUnavailable, "rotating a trigger's secret needs the secrets key (start the gateway with --secrets-key-file)")
		}
		changed = append(changed, "secret")
	}
	if len(changed) == 0 {
		return c.JSON(http.StatusOK, viewTrigger(*cur, g.now()))
	}
	now := g.now().UTC()
	t, err := g.store.UpdateTrigger(ctx, ws, cur.Name, func(t *store.Trigger) error {
		if t.ID != cur.ID {
			// Deleted and made again meanwhile, maybe for another provider,
			// which the secret was not checked for.
			return api.Errorf(api.CodeConflict, "trigger %q was replaced while it was being changed; retry", cur.Name)
		}
		if p.Filter != nil {
			t.Filter = store.TriggerFilter(*p.Filter)
		}
		if p.Job != nil {
			t.Job = *p.Job
		}
		if p.Secret != "" {
			if err := g.rotateTriggerSecret(t, p.Secret, time.Duration(grace)*time.Second, now); err != nil {
				return err
			}
		}
		t.UpdatedAt = now
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no trigger %q", cur.Name)
	}
	if err != nil {
		return err
	}
	// The target says what changed, never to what: no secret is logged.
	g.audit(c, ws, "trigger.update", fmt.Sprintf("%s (%s)", t.Name, strings.Join(changed, ", ")))
	return c.JSON(http.StatusOK, viewTrigger(*t, g.now()))
}

// openTriggerSecrets is t's signing secrets in clear: the current one
// first, then any previous ones.
func (g *Gateway) openTriggerSecrets(t *store.Trigger) ([]string, error) {
	plain, err := g.secrets.Open(t.Workspace, triggerSecretName(t.Name), t.SealedSecrets)
	if err != nil {
		return nil, fmt.Errorf("open secrets of trigger %s: %w", t.ID, err)
	}
	var secrets []string
	if err := json.Unmarshal(plain, &secrets); err != nil {
		return nil, fmt.Errorf("decode secrets of trigger %s: %w", t.ID, err)
	}
	if len(secrets) == 0 {
		return nil, fmt.Errorf("trigger %s has no secrets", t.ID)
	}
	return secrets, nil
}

// acceptedSecrets are those of secrets (t's, opened) that sign deliveries
// at now: the current one, and the previous ones until their grace ends.
func acceptedSecrets(t *store.Trigger, secrets []string, now time.Time) []string {
	if !t.PreviousSecretUntil.IsZero() && !now.Before(t.PreviousSecretUntil) {
		return secrets[:1]
	}
	return secrets
}

// rotateTriggerSecret makes secret t's current one, keeping the one it
// replaces for grace after now (none when grace is 0). Earlier previous
// secrets end at once: only the replaced one has senders still using it.
func (g *Gateway) rotateTriggerSecret(t *store.Trigger, secret string, grace time.Duration, now time.Time) error {
	old, err := g.openTriggerSecrets(t)
	if err != nil {
		return err
	}
	secrets, until := []string{secret}, time.Time{}
	if grace > 0 && old[0] != secret {
		secrets, until = append(secrets, old[0]), now.Add(grace)
	}
	plain, err := json.Marshal(secrets)
	if err != nil {
		return err
	}
	sealed, err := g.secrets.Seal(t.Workspace, triggerSecretName(t.Name), plain)
	if err != nil {
		return err
	}
	t.SealedSecrets, t.PreviousSecretUntil = sealed, until
	return nil
}

func (g *Gateway) triggerDeliveries(c echo.Context) error {
	t, err := g.triggerParam(c)
	if err != nil {
		return err
	}
	ds, err := g.store.Deliveries(c.Request().Context(), t.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, api.DeliveryList{Deliveries: convert(ds, func(d store.Delivery) api.Delivery { return api.Delivery(d) })})
}

// receiveHook handles POST /hooks/:id, authenticated by signature only.
func (g *Gateway) receiveHook(c echo.Context) error {
	ctx := c.Request().Context()
	id := c.Param("id")
	if !hookIDRE.MatchString(id) {
		return api.Errorf(api.CodeNotFound, "no such hook")
	}
	t, err := g.store.TriggerByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(api.CodeNotFound, "no such hook")
	}
	if err != nil {
		return err
	}
	body, err := readBody(c)
	if err != nil {
		return err
	}
	if g.secrets == nil {
		return api.Errorf(api.CodeUnavailable, "this gateway has no secrets key to check signatures with")
	}
	secrets, err := g.openTriggerSecrets(t)
	if err != nil {
		return err
	}
	secrets = acceptedSecrets(t, secrets, g.now())

	h := c.Request().Header
	var event, deliveryID string
	switch t.Provider {
	case providerGitHub:
		err = verifyGitHub(secrets, body, h.Get(webhook.HeaderGitHubSignature))
		event, deliveryID = h.Get("X-GitHub-Event"), h.Get("X-GitHub-Delivery")
	case providerStandard:
		err = webhook.VerifyStandard(secrets, h, body, g.now(), webhook.DefaultTolerance)
		deliveryID = h.Get(webhook.HeaderID)
	default:
		err = fmt.Errorf("trigger %s has unknown provider %q", t.ID, t.Provider)
	}
	if errors.Is(err, webhook.ErrBadSignature) || errors.Is(err, webhook.ErrStale) {
		// Not recorded: anyone can send these, and they must not push real
		// deliveries out of the history.
		g.logger.InfoContext(ctx, "webhook delivery refused", slog.String("trigger_id", t.ID),
			slog.String("workspace", t.Workspace), slog.String("reason", err.Error()))
		g.cfg.Metrics.WebhookDelivery(t.Workspace, "bad_signature")
		return api.Errorf(api.CodeUnauthorized, "%v", err)
	}
	if err != nil {
		return err
	}

	// From here on the sender holds the secret: every outcome is recorded.
	d := store.Delivery{ID: deliveryID, ReceivedAt: g.now().UTC(), Event: event}
	res, err := g.deliver(ctx, t, &d, body)
	d.ID, d.Event = truncate(d.ID, maxDeliveryIDBytes), truncate(d.Event, 128)
	if err != nil {
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code.Status() >= 500 {
			d.Reason = "internal error"
		} else {
			d.Reason = ae.Message
		}
		d.Outcome = store.OutcomeRejected
	}
	g.cfg.Metrics.WebhookDelivery(t.Workspace, d.Outcome)
	rec, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if rerr := g.store.RecordDelivery(rec, t.ID, d); rerr != nil {
		g.logger.ErrorContext(ctx, "record webhook delivery", slog.String("trigger_id", t.ID), slog.Any("error", rerr))
	}
	if err != nil {
		return err
	}
	return c.JSON(res.status, res.body)
}

type hookResult struct {
	status int
	body   api.HookResult
}

// deliver acts on an authenticated delivery and fills in d's outcome. An
// error means the delivery is rejected.
func (g *Gateway) deliver(ctx context.Context, t *store.Trigger, d *store.Delivery, body []byte) (hookResult, error) {
	payload, done, err := screenDelivery(t, d, body)
	if err != nil || done != nil {
		return deref(done), err
	}
	// The job is made and the claims settled even if the sender hangs up.
	work, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	claims := g.newDeliveryClaims(work, t, d, body)
	if res, err := claims.claim(ctx, d); err != nil || res != nil {
		return deref(res), err
	}

	// The job is stored and every claim completed with its id in one step:
	// a gateway that dies on the way leaves both or neither, so a
	// redelivery after our claims lapsed never makes a second job.
	var made string
	job, err := g.jobFromDelivery(work, t, d, payload, func(ctx context.Context, j *api.Job) (bool, error) {
		var err error
		made, err = g.store.CreateJobForDelivery(ctx, j, t.ID, claims.keys, deliveryTTL)
		return made == "", err
	})
	if err != nil {
		claims.release(claims.keys)
		return hookResult{}, err
	}
	if job == nil {
		// Our claims lapsed while the job was checked, and a redelivery
		// made it meanwhile.
		claims.complete(claims.keys, made)
		d.Outcome, d.JobID, d.Reason = store.OutcomeDuplicate, made, "delivery already made job "+made
		return hookResult{http.StatusOK, api.HookResult{JobID: made, Duplicate: true}}, nil
	}
	d.Outcome, d.JobID = store.OutcomeAccepted, job.ID
	return hookResult{http.StatusAccepted, api.HookResult{JobID: job.ID}}, nil
}

func deref(r *hookResult) hookResult {
	if r == nil {
		return hookResult{}
	}
	return *r
}

// screenDelivery checks an authenticated delivery's headers and decodes its
// payload. done is the answer when the delivery makes no job (a ping, or an
// event the trigger's filter leaves out); an error rejects it.
func screenDelivery(t *store.Trigger, d *store.Delivery, body []byte) (payload map[string]any, done *hookResult, err error) {
	if t.Provider == providerGitHub {
		if d.Event == "" {
			return nil, nil, api.Errorf(api.CodeBadRequest, "missing X-GitHub-Event header")
		}
		if d.Event == "ping" {
			d.Outcome, d.Reason = store.OutcomeIgnored, "ping"
			return nil, &hookResult{http.StatusOK, api.HookResult{Pong: true}}, nil
		}
		if d.ID == "" {
			return nil, nil, api.Errorf(api.CodeBadRequest, "missing X-GitHub-Delivery header")
		}
	}
	if len(d.ID) > maxDeliveryIDBytes {
		return nil, nil, api.Errorf(api.CodeBadRequest, "delivery id is longer than %d bytes", maxDeliveryIDBytes)
	}
	payload, err = tmpl.DecodePayload(body)
	if err != nil {
		hint := ""
		if t.Provider == providerGitHub {
			hint = " (set the GitHub webhook's content type to application/json)"
		}
		return nil, nil, api.Errorf(api.CodeBadRequest, "payload is not a JSON object%s", hint)
	}
	if t.Provider == providerStandard {
		d.Event, _ = payload["type"].(string)
	}
	if why := filterMismatch(t.Filter, d.Event, payload); why != "" {
		d.Outcome, d.Reason = store.OutcomeIgnored, why
		return nil, &hookResult{http.StatusOK, api.HookResult{Ignored: why}}, nil
	}
	return payload, nil, nil
}

// deliveryClaims are the claims one delivery makes so that a redelivery,
// or the same delivery reaching two gateways at once, makes one job.
// GitHub signs only the body, so anyone who saw one delivery could send its
// body and signature again under a fresh X-GitHub-Delivery: the body's
// hash is claimed too, the same way. Each claim is one SET NX, and a job is
// made only by the holder of all of them, so one body makes one job in 24 h
// however many gateways it reaches at once, under whatever ids. (Standard
// Webhooks signs the id with the body: a new id needs the secret.)
type deliveryClaims struct {
	g       *Gateway
	work    context.Context // settles the claims even if the sender hangs up
	trigger string
	keys    []store.DeliveryKey
	token   string
}

func (g *Gateway) newDeliveryClaims(work context.Context, t *store.Trigger, d *store.Delivery, body []byte) *deliveryClaims {
	keys := []store.DeliveryKey{store.ByDeliveryID(d.ID)}
	if t.Provider == providerGitHub {
		keys = append(keys, store.ByBody(body))
	}
	return &deliveryClaims{g: g, work: work, trigger: t.ID, keys: keys, token: rand.Text()}
}

// claim takes every claim of the delivery. It returns nil, nil once all are
// held; the answer when a delivery with one of the keys already made a job
// (d is marked duplicate); or an error, having released what it held.
func (c *deliveryClaims) claim(ctx context.Context, d *store.Delivery) (*hookResult, error) {
	for i, k := range c.keys {
		jobID, err := c.g.claimDelivery(ctx, c.trigger, k, c.token)
		if err != nil {
			c.release(c.keys[:i])
			if errors.Is(err, errStillProcessing) {
				return nil, api.Errorf(api.CodeConflict, "delivery %s is still being processed; retry shortly", d.ID)
			}
			return nil, err
		}
		if jobID != "" {
			// This id, if it was new, answers with that job from now on.
			c.complete(c.keys[:i], jobID)
			why := "delivery already made job "
			if i > 0 {
				why = "the same body, under another delivery id, already made job "
			}
			d.Outcome, d.JobID, d.Reason = store.OutcomeDuplicate, jobID, why+jobID
			return &hookResult{http.StatusOK, api.HookResult{JobID: jobID, Duplicate: true}}, nil
		}
	}
	return nil, nil
}

// release gives up the claims held.
func (c *deliveryClaims) release(held []store.DeliveryKey) {
	for _, k := range held {
		if err := c.g.store.ReleaseDelivery(c.work, c.trigger, k, c.token); err != nil {
			c.g.logger.ErrorContext(c.work, "release webhook delivery", slog.String("trigger_id", c.trigger), slog.Any("error", err))
		}
	}
}

// complete points the claims held to the job another delivery with one of
// the keys made; a job made here completes them itself.
func (c *deliveryClaims) complete(held []store.DeliveryKey, jobID string) {
	for _, k := range held {
		if err := c.g.store.CompleteDelivery(c.work, c.trigger, k, c.token, jobID, deliveryTTL); err != nil {
			// The job exists and its own keys name it: this key alone may
			// make another job once the claim lapses.
			c.g.logger.ErrorContext(c.work, "complete webhook delivery", slog.String("trigger_id", c.trigger),
				slog.String("job_id", jobID), slog.Any("error", err))
		}
	}
}

// errStillProcessing: another delivery with the same key held its claim
// for all of duplicateWait.
var errStillProcessing = errors.New("delivery still being processed")

// claimDelivery claims k for trigger with token. It returns "" once the
// caller holds the claim, or the job a delivery with that key made, waiting
// up to duplicateWait while another caller holds it (then
// errStillProcessing).
func (g *Gateway) claimDelivery(ctx context.Context, trigger string, k store.DeliveryKey, token string) (string, error) {
	wait, stop := context.WithTimeout(ctx, duplicateWait)
	defer stop()
	for {
		jobID, claimed, err := g.store.ClaimDelivery(ctx, trigger, k, token, deliveryClaimHold)
		if err != nil || claimed || jobID != "" {
			return jobID, err
		}
		select {
		case <-wait.Done():
			return "", errStillProcessing
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// jobFromDelivery renders the trigger's template over the delivery and
// submits the job as "trigger:NAME" through the job service, stored by
// save (no job and no error when save made none). Rendered values become whole env
// values and argv elements; nothing is passed through a shell.
func (g *Gateway) jobFromDelivery(ctx context.Context, t *store.Trigger, d *store.Delivery, payload map[string]any, save func(context.Context, *api.Job) (bool, error)) (*api.Job, error) {
	data := map[string]any{"payload": payload, "event": d.Event, "delivery": d.ID}
	spec := t.Job
	var err error
	if len(spec.Env) > 0 {
		if spec.Env, err = tmpl.RenderMap(t.Job.Env, data); err != nil {
			return nil, renderErr("job.env", false, err)
		}
	}
	if len(spec.Command) > 0 {
		if spec.Command, err = tmpl.RenderArgs(t.Job.Command, data); err != nil {
			return nil, renderErr("job.command", true, err)
		}
	}
	if len(spec.Preparation) > 0 {
		if spec.Preparation, err = tmpl.RenderArgs(t.Job.Preparation, data); err != nil {
			return nil, renderErr("job.preparation", true, err)
		}
	}
	if len(spec.Tags) > 0 {
		if spec.Tags, err = tmpl.RenderMap(t.Job.Tags, data); err != nil {
			return nil, renderErr("job.tags", false, err)
		}
	}
	res, err := g.jobs.Submit(ctx, job.Request{Workspace: t.Workspace, Actor: "trigger:" + t.Name, Spec: spec, Save: save})
	var ae *api.Error
	if errors.As(err, &ae) && ae.Code.Status() < 500 {
		return nil, renderedJobError(ae)
	}
	return res.Job, err
}

// renderedJobError is the 422 for a job a trigger's template rendered that
// the job checks refused: its code when that is a 422 already
// (invalid_spec, invalid_request), else invalid_spec, as the delivery's job
// is what is wrong, not the sender's request.
func renderedJobError(ae *api.Error) *api.Error {
	code := ae.Code
	if code.Status() != http.StatusUnprocessableEntity {
		code = api.CodeInvalidSpec
	}
	return api.Errorf(code, "rendered job: %s", ae.Message)
}

// renderErr is the 422 for a job template that failed on a delivery, naming
// the string in the trigger's job that failed, as job.env.GIT_SHA or
// job.command[2], and why, as "cannot read .payload.head_commit.id:
// .payload.head_commit is null". args says the template was a list
// (RenderArgs), whose errors name elements "args[2]".
func renderErr(field string, args bool, err error) error {
	var te *tmpl.Error
	if !errors.As(err, &te) {
		return invalid("%s: %v", field, err)
	}
	where := field + "." + te.Name
	if args {
		where = field + strings.TrimPrefix(te.Name, "args")
	}
	return invalid("%s: %s", where, te.Reason)
}

// filterMismatch says why a delivery does not pass filter, or "" when it
// does. The event is GitHub's X-GitHub-Event header, or a Standard Webhooks
// payload's "type"; the ref is the payload's "ref", for either provider.
func filterMismatch(f store.TriggerFilter, event string, payload map[string]any) string {
	if f.Event != "" && event != f.Event {
		if event == "" {
			return fmt.Sprintf("the delivery names no event; the trigger wants %q", f.Event)
		}
		return fmt.Sprintf("event %q is not %q", event, f.Event)
	}
	if f.Ref != "" {
		ref, _ := payload["ref"].(string)
		if ref != f.Ref {
			if ref == "" {
				return fmt.Sprintf("the payload has no ref; the trigger wants %q", f.Ref)
			}
			return fmt.Sprintf("ref %q is not %q", truncate(ref, 256), f.Ref)
		}
	}
	return ""
}

// verifyGitHub accepts a signature made with any of secrets (the second
// during a rotation).
func verifyGitHub(secrets []string, body []byte, sig string) error {
	err := webhook.ErrBadSignature
	for _, s := range secrets {
		if err = webhook.VerifyGitHub([]byte(s), body, sig); err == nil {
			return nil
		}
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
