package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

// endedKey is a stream of jobs that ended and asked for a callback; the
// finish script appends to it in the same step that ends the job, so no
// ending is missed even if a gateway dies.
const endedKey = prefix + "events:ended"

func notifyKey(id string) string { return prefix + "job:" + id + ":notify" }

// Notification is one delivery attempt of a job's completion callback.
type Notification struct {
	Attempt    int       `json:"attempt"`
	Type       string    `json:"type"`
	At         time.Time `json:"at"`
	StatusCode int       `json:"status_code,omitempty"`
	Error      string    `json:"error,omitempty"`
	DurationMS int64     `json:"duration_ms"`
}

// RecordNotification appends a delivery attempt to the job's record.
func (s *Store) RecordNotification(ctx context.Context, id string, n Notification) error {
	b, err := json.Marshal(n)
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.RPush(ctx, notifyKey(id), b)
		p.LTrim(ctx, notifyKey(id), -100, -1)
		return nil
	})
	return err
}

// Notifications lists the job's callback attempts, oldest first.
func (s *Store) Notifications(ctx context.Context, id string) ([]Notification, error) {
	raw, err := s.rdb.LRange(ctx, notifyKey(id), 0, -1).Result()
	if err != nil {
		return nil, err
	}
	var out []Notification
	for _, r := range raw {
		var n Notification
		if json.Unmarshal([]byte(r), &n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// EndedEvent says job JobID ended with Status and wants a callback.
type EndedEvent struct {
	StreamID string
	JobID    string
	Status   string
}

const endedGroup = "notifiers"

// ReadEnded claims up to n ended-job events for consumer: first ones another
// consumer took and left unacknowledged for longer than stale (it died),
// then new ones, waiting up to block for them.
func (s *Store) ReadEnded(ctx context.Context, consumer string, n int64, block, stale time.Duration) ([]EndedEvent, error) {
	err := s.rdb.XGroupCreateMkStream(ctx, endedKey, endedGroup, "0").Err()
	if err != nil && !isBusyGroup(err) {
		return nil, err
	}
	msgs, _, err := s.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: endedKey, Group: endedGroup, Consumer: consumer,
		MinIdle: stale, Start: "0", Count: n}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	if len(msgs) == 0 {
		streams, err := s.rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: endedGroup, Consumer: consumer,
			Streams: []string{endedKey, ">"}, Count: n, Block: block}).Result()
		if errors.Is(err, redis.Nil) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		for _, st := range streams {
			msgs = append(msgs, st.Messages...)
		}
	}
	out := make([]EndedEvent, 0, len(msgs))
	for _, m := range msgs {
		id, _ := m.Values["job"].(string)
		st, _ := m.Values["status"].(string)
		out = append(out, EndedEvent{StreamID: m.ID, JobID: id, Status: st})
	}
	return out, nil
}

// AckEnded marks an ended-job event handled.
func (s *Store) AckEnded(ctx context.Context, streamID string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.XAck(ctx, endedKey, endedGroup, streamID)
		p.XDel(ctx, endedKey, streamID)
		return nil
	})
	return err
}

func isBusyGroup(err error) bool {
	return err != nil && len(err.Error()) >= 9 && err.Error()[:9] == "BUSYGROUP"
}

// --- idempotency keys ------------------------------------------------------

func idemKey(ws, hash string) string { return prefix + "ws:" + ws + ":idem:" + hash }

// IdemRecord is what an Idempotency-Key stands for.
type IdemRecord struct {
	// JobID is empty while the first request is still creating the job.
	JobID    string `json:"job_id,omitempty"`
	BodyHash string `json:"body_hash"`
}

// ClaimIdempotency takes keyHash for a request whose body hashes to
// bodyHash. It returns (nil, nil) when the caller now owns the key and must
// create the job (with CreateJobOnce, which completes the key), or the
// record a first request left.
func (s *Store) ClaimIdempotency(ctx context.Context, ws, keyHash, bodyHash string, creating time.Duration) (*IdemRecord, error) {
	b, _ := json.Marshal(IdemRecord{BodyHash: bodyHash})
	ok, err := s.rdb.SetNX(ctx, idemKey(ws, keyHash), b, creating).Result()
	if err != nil {
		return nil, err
	}
	if ok {
		return nil, nil
	}
	raw, err := s.rdb.Get(ctx, idemKey(ws, keyHash)).Bytes()
	if errors.Is(err, redis.Nil) {
		return s.ClaimIdempotency(ctx, ws, keyHash, bodyHash, creating) // expired in between
	}
	if err != nil {
		return nil, err
	}
	var r IdemRecord
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// ReleaseIdempotency frees a key whose request failed, so it can be
// retried; a key that names a job (a request under it succeeded) stays.
func (s *Store) ReleaseIdempotency(ctx context.Context, ws, keyHash string) error {
	return releaseIdemScript.Run(ctx, s.rdb, []string{idemKey(ws, keyHash)}).Err()
}
