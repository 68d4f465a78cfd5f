package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Webhook triggers live under three kinds of keys:
//
//	{jobgate}:ws:<ws>:triggers              hash name → trigger id
//	{jobgate}:trigger:<id>                  the Trigger, JSON
//	{jobgate}:trigger:<id>:deliveries       list of Delivery, newest first, capped
//	{jobgate}:trigger:<id>:seen:<sha256>    a delivery id's claim, then its job id
//	{jobgate}:trigger:<id>:body:<sha256>    a delivery body's claim, then its job id
//
// Deliveries and claims are keyed by the trigger's id, not its name, so a
// trigger deleted and created again starts with a clean history.
func wsTriggersKey(ws string) string { return prefix + "ws:" + ws + ":triggers" }
func triggerKey(id string) string    { return prefix + "trigger:" + id }
func deliveriesKey(id string) string { return prefix + "trigger:" + id + ":deliveries" }
func claimKey(trigger string, k DeliveryKey) string {
	return prefix + "trigger:" + trigger + ":" + string(k)
}

// DeliveryKey is what a delivery is deduplicated on: its id (ByDeliveryID),
// or, where the sender signs only the body, the body too (ByBody).
type DeliveryKey string

// ByDeliveryID keys a delivery by the id its sender gave it.
func ByDeliveryID(id string) DeliveryKey {
	h := sha256.Sum256([]byte(id))
	return DeliveryKey("seen:" + hex.EncodeToString(h[:]))
}

// ByBody keys a delivery by its body's SHA-256.
func ByBody(body []byte) DeliveryKey {
	h := sha256.Sum256(body)
	return DeliveryKey("body:" + hex.EncodeToString(h[:]))
}

// DeliveriesKept is how many deliveries a trigger's history keeps.
const DeliveriesKept = 100

// TriggerFilter says which deliveries a trigger acts on; an empty field
// matches anything.
type TriggerFilter struct {
	Event string `json:"event,omitempty"`
	Ref   string `json:"ref,omitempty"`
}

// Trigger is a webhook trigger: deliveries to /hooks/{ID} signed with its
// secrets start a job made from the Job template.
type Trigger struct {
	ID        string        `json:"id"`
	Workspace string        `json:"workspace"`
	Name      string        `json:"name"`
	Provider  string        `json:"provider"`
	Filter    TriggerFilter `json:"filter"`
	Job       api.JobSpec   `json:"job"`
	CreatedAt time.Time     `json:"created_at"`
	// UpdatedAt is the last change by UpdateTrigger; zero if none.
	UpdatedAt time.Time `json:"updated_at,omitzero"`
	// SealedSecrets are the signing secrets, encrypted by the gateway's
	// secretbox; the store never sees them in clear. The first is the
	// current one; any after it are previous ones.
	SealedSecrets []byte `json:"sealed_secrets"`
	// PreviousSecretUntil is when the previous secrets stop being accepted
	// (set by a rotation); zero means they do not expire (a previous
	// secret given on create).
	PreviousSecretUntil time.Time `json:"previous_secret_until,omitzero"`
}

// Delivery outcomes.
const (
	OutcomeAccepted  = "accepted"
	OutcomeIgnored   = "ignored"
	OutcomeDuplicate = "duplicate"
	OutcomeRejected  = "rejected"
)

// Delivery is one authenticated delivery to a trigger and what came of it.
type Delivery struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
	Event      string    `json:"event,omitempty"`
	Outcome    string    `json:"outcome"`
	Reason     string    `json:"reason,omitempty"`
	JobID      string    `json:"job_id,omitempty"`
}

// CreateTrigger stores t; ErrConflict if its workspace has a trigger of that
// name.
func (s *Store) CreateTrigger(ctx context.Context, t Trigger) error {
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode trigger: %w", err)
	}
	ok, err := createTrigger.Run(ctx, s.rdb, []string{wsTriggersKey(t.Workspace), triggerKey(t.ID)}, t.Name, t.ID, b).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		return fmt.Errorf("trigger %q exists: %w", t.Name, ErrConflict)
	}
	return nil
}

// Trigger returns trigger name of workspace ws, or ErrNotFound.
func (s *Store) Trigger(ctx context.Context, ws, name string) (*Trigger, error) {
	id, err := s.rdb.HGet(ctx, wsTriggersKey(ws), name).Result()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	t, err := s.TriggerByID(ctx, id)
	if err != nil {
		return nil, err
	}
	if t.Workspace != ws {
		return nil, ErrNotFound
	}
	return t, nil
}

// TriggerByID returns the trigger with hook id id, whatever its workspace,
// or ErrNotFound; for inbound deliveries.
func (s *Store) TriggerByID(ctx context.Context, id string) (*Trigger, error) {
	b, err := s.rdb.Get(ctx, triggerKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var t Trigger
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("trigger %s: %w", id, err)
	}
	return &t, nil
}

// Triggers lists ws's triggers, in no particular order.
func (s *Store) Triggers(ctx context.Context, ws string) ([]Trigger, error) {
	ids, err := s.rdb.HVals(ctx, wsTriggersKey(ws)).Result()
	if err != nil || len(ids) == 0 {
		return nil, err
	}
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = triggerKey(id)
	}
	vals, err := s.rdb.MGet(ctx, keys...).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Trigger, 0, len(vals))
	for _, v := range vals {
		str, ok := v.(string)
		if !ok {
			continue // deleted in between
		}
		var t Trigger
		if json.Unmarshal([]byte(str), &t) == nil && t.Workspace == ws {
			out = append(out, t)
		}
	}
	return out, nil
}

// DeleteTrigger removes trigger name of ws and its delivery history; its hook
// answers 404 from then on. ErrNotFound if there is none.
func (s *Store) DeleteTrigger(ctx context.Context, ws, name string) error {
	id, err := s.rdb.HGet(ctx, wsTriggersKey(ws), name).Result()
	if errors.Is(err, redis.Nil) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	// Claims expire on their own (24 h); the id is never reused.
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, wsTriggersKey(ws), name)
		p.Del(ctx, triggerKey(id), deliveriesKey(id))
		return nil
	})
	return err
}

// UpdateTrigger changes trigger name of ws with change, which gets the
// trigger as stored and edits it in place; the result is written only if
// nobody changed or deleted the trigger since it was read (WATCH), else
// change runs again on what is there now, so concurrent updates never
// undo each other. ID, workspace and name are kept whatever change does.
// ErrNotFound if there is none; change's error is returned as it is.
func (s *Store) UpdateTrigger(ctx context.Context, ws, name string, change func(*Trigger) error) (*Trigger, error) {
	var out *Trigger
	for range casAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			id, err := tx.HGet(ctx, wsTriggersKey(ws), name).Result()
			if errors.Is(err, redis.Nil) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			if err := tx.Watch(ctx, triggerKey(id)).Err(); err != nil {
				return err
			}
			b, err := tx.Get(ctx, triggerKey(id)).Bytes()
			if errors.Is(err, redis.Nil) {
				return ErrNotFound
			}
			if err != nil {
				return err
			}
			var t Trigger
			if err := json.Unmarshal(b, &t); err != nil {
				return fmt.Errorf("trigger %s: %w", id, err)
			}
			if t.Workspace != ws {
				return ErrNotFound
			}
			if err := change(&t); err != nil {
				return err
			}
			t.ID, t.Workspace, t.Name = id, ws, name
			nb, err := json.Marshal(t)
			if err != nil {
				return fmt.Errorf("encode trigger: %w", err)
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.Set(ctx, triggerKey(id), nb, 0)
				return nil
			})
			out = &t
			return err
		}, wsTriggersKey(ws))
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("trigger %q kept changing: %w", name, ErrConflict)
}

// RecordDelivery adds d to the history of trigger id, dropping the oldest
// beyond DeliveriesKept.
func (s *Store) RecordDelivery(ctx context.Context, id string, d Delivery) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, deliveriesKey(id), b)
		p.LTrim(ctx, deliveriesKey(id), 0, DeliveriesKept-1)
		return nil
	})
	return err
}

// Deliveries returns the history of trigger id, newest first.
func (s *Store) Deliveries(ctx context.Context, id string) ([]Delivery, error) {
	raw, err := s.rdb.LRange(ctx, deliveriesKey(id), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Delivery, 0, len(raw))
	for _, r := range raw {
		var d Delivery
		if json.Unmarshal([]byte(r), &d) == nil {
			out = append(out, d)
		}
	}
	return out, nil
}

// claimPrefix marks a claim still being processed; a finished claim holds
// the job id, which never starts with it.
const claimPrefix = "claim:"

// ClaimDelivery claims the delivery of trigger keyed k so that only one
// gateway acts on it, with SET NX. It returns claimed=true when the caller
// won and must then CompleteDelivery or ReleaseDelivery with the token;
// otherwise jobID is the job a delivery with that key already made, or ""
// while another caller still holds the claim. An unfinished claim lapses
// after hold, so a gateway that dies mid-delivery does not block
// redeliveries for long.
func (s *Store) ClaimDelivery(ctx context.Context, trigger string, k DeliveryKey, token string, hold time.Duration) (jobID string, claimed bool, err error) {
	key := claimKey(trigger, k)
	ok, err := s.rdb.SetNX(ctx, key, claimPrefix+token, hold).Result()
	if err != nil {
		return "", false, err
	}
	if ok {
		return "", true, nil
	}
	v, err := s.rdb.Get(ctx, key).Result()
	if errors.Is(err, redis.Nil) {
		return s.ClaimDelivery(ctx, trigger, k, token, hold) // released or lapsed in between
	}
	if err != nil {
		return "", false, err
	}
	if !completedClaim(v) {
		return "", false, nil
	}
	return v, false, nil
}

// CompleteDelivery records that the delivery claimed under k made job
// jobID; for ttl, deliveries with the same key get that job back.
func (s *Store) CompleteDelivery(ctx context.Context, trigger string, k DeliveryKey, token, jobID string, ttl time.Duration) error {
	ok, err := finishClaim.Run(ctx, s.rdb, []string{claimKey(trigger, k)}, claimPrefix+token, jobID, ttl.Milliseconds()).Int()
	if err != nil {
		return err
	}
	if ok == 0 {
		// The claim lapsed while the job was made; record it anyway, so
		// later redeliveries still find it.
		return s.rdb.Set(ctx, claimKey(trigger, k), jobID, ttl).Err()
	}
	return nil
}

// CreateJobForDelivery is CreateJob for a delivery of trigger holding the
// claims keys: in the same MULTI it completes each claim with j's id, for
// ttl, so a gateway that dies after it leaves a job that every redelivery
// finds, and one that dies before it leaves no job and claims that lapse.
// When a claim already names a job (ours lapsed, and a redelivery made that
// job), nothing is written and that job's id comes back.
func (s *Store) CreateJobForDelivery(ctx context.Context, j *api.Job, trigger string, keys []DeliveryKey, ttl time.Duration) (string, error) {
	guards := make([]jobGuard, len(keys))
	for i, k := range keys {
		guards[i] = jobGuard{key: claimKey(trigger, k), value: j.ID, ttl: ttl, made: completedClaim}
	}
	_, prev, err := s.createJobGuarded(ctx, j, "delivery claims", guards)
	return prev, err
}

// completedClaim reports whether v, a claim's value, names the job its
// delivery made.
func completedClaim(v string) bool { return !strings.HasPrefix(v, claimPrefix) }

// ReleaseDelivery frees the claim under k of a delivery that made no job,
// so a redelivery is processed afresh.
func (s *Store) ReleaseDelivery(ctx context.Context, trigger string, k DeliveryKey, token string) error {
	return finishClaim.Run(ctx, s.rdb, []string{claimKey(trigger, k)}, claimPrefix+token, "", 0).Err()
}
