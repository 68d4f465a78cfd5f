package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// ErrLimit means a workspace holds as many of a thing as it may.
var ErrLimit = errors.New("limit reached")

// allSchedulesKey indexes every schedule of every workspace as "ws/name",
// for the firing loop.
const allSchedulesKey = prefix + "schedules"

func scheduleKey(ws, name string) string     { return prefix + "ws:" + ws + ":schedule:" + name }
func scheduleHistKey(ws, name string) string { return scheduleKey(ws, name) + ":history" }
func scheduleLockKey(ws, name string) string { return scheduleKey(ws, name) + ":lock" }
func wsSchedulesKey(ws string) string        { return prefix + "ws:" + ws + ":schedules" }

// tickKey is the claim of one tick of one schedule. It carries the schedule's
// ID, so a schedule deleted and created again under the same name starts
// afresh.
func tickKey(ws, name, id string, tick time.Time) string {
	return scheduleKey(ws, name) + ":tick:" + id + ":" + strconv.FormatInt(tick.UnixMilli(), 10)
}

// validScheduleName keeps client input out of key names beyond what the
// gateway accepts as a name (no ':' or '/').
func validScheduleName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Schedule is a workspace's cron schedule and where its firing stands. The
// definition is written on create and by UpdateSchedule; the state (the
// fields without a JSON name) is kept in fields of its own, so firing,
// pausing and resuming never overwrite each other.
type Schedule struct {
	// ID tells this schedule from an earlier one of the same name.
	ID                      string      `json:"id"`
	Workspace               string      `json:"workspace"`
	Name                    string      `json:"name"`
	Cron                    string      `json:"cron"`
	Timezone                string      `json:"timezone"`
	ConcurrencyPolicy       string      `json:"concurrency_policy"`
	StartingDeadlineSeconds int         `json:"starting_deadline_seconds"`
	Job                     api.JobSpec `json:"job"`
	CreatedAt               time.Time   `json:"created_at"`
	CreatedBy               string      `json:"created_by"`

	Paused bool `json:"-"`
	// Since: ticks at or before it never fire (set at creation and resume).
	Since time.Time `json:"-"`
	// LastTick is the latest tick handled (fired or skipped); zero if none.
	LastTick time.Time `json:"-"`
	// LastFiredAt and LastJob: the latest job this schedule started, by a
	// tick or by hand; zero and "" if none.
	LastFiredAt time.Time `json:"-"`
	LastJob     string    `json:"-"`
}

// ScheduleRun is one firing of a schedule: the job it started, or why it
// started none.
type ScheduleRun struct {
	// ScheduledAt is the tick; for a run by hand, when it was asked for.
	ScheduledAt time.Time `json:"scheduled_at"`
	// FiredAt is when the job was created; nil when skipped.
	FiredAt       *time.Time `json:"fired_at"`
	JobID         string     `json:"job_id"`
	SkippedReason string     `json:"skipped_reason"`
	// Manual marks a run by hand (POST .../run).
	Manual bool `json:"manual,omitempty"`
}

func msString(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

func msTime(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n == 0 {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}

// CreateSchedule stores a new schedule, its state starting at sc.Since.
// ErrConflict when the name is taken in the workspace; ErrLimit when the
// workspace already has max schedules (max <= 0: no limit).
func (s *Store) CreateSchedule(ctx context.Context, sc Schedule, max int) error {
	if !validScheduleName(sc.Name) {
		return fmt.Errorf("schedule name %q: not a valid name", sc.Name)
	}
	def, err := json.Marshal(sc)
	if err != nil {
		return err
	}
	n, err := createScheduleScript.Run(ctx, s.rdb,
		[]string{scheduleKey(sc.Workspace, sc.Name), wsSchedulesKey(sc.Workspace), allSchedulesKey},
		sc.Name, sc.Workspace+"/"+sc.Name, def, sc.ID, msString(sc.Since), max).Int()
	switch {
	case err != nil:
		return err
	case n == 0:
		return fmt.Errorf("schedule %q exists: %w", sc.Name, ErrConflict)
	case n < 0:
		return fmt.Errorf("workspace %s has %d schedules: %w", sc.Workspace, max, ErrLimit)
	}
	return nil
}

func decodeSchedule(m map[string]string) (*Schedule, error) {
	var sc Schedule
	if err := json.Unmarshal([]byte(m["def"]), &sc); err != nil {
		return nil, fmt.Errorf("schedule: bad definition: %w", err)
	}
	sc.Paused = m["paused"] == "1"
	sc.Since = msTime(m["since"])
	sc.LastTick = msTime(m["last_tick"])
	sc.LastFiredAt = msTime(m["last_fired_at"])
	sc.LastJob = m["last_job"]
	return &sc, nil
}

// Schedule returns schedule name of workspace ws, or ErrNotFound.
func (s *Store) Schedule(ctx context.Context, ws, name string) (*Schedule, error) {
	if !validScheduleName(name) {
		return nil, ErrNotFound
	}
	m, err := s.rdb.HGetAll(ctx, scheduleKey(ws, name)).Result()
	if err != nil {
		return nil, err
	}
	if len(m) == 0 || m["def"] == "" {
		return nil, ErrNotFound
	}
	return decodeSchedule(m)
}

// Schedules lists the schedules of workspace ws, in no order.
func (s *Store) Schedules(ctx context.Context, ws string) ([]Schedule, error) {
	names, err := s.rdb.SMembers(ctx, wsSchedulesKey(ws)).Result()
	if err != nil {
		return nil, err
	}
	refs := make([][2]string, len(names))
	for i, n := range names {
		refs[i] = [2]string{ws, n}
	}
	return s.schedules(ctx, refs)
}

// AllSchedules lists the schedules of every workspace, for the firing loop.
func (s *Store) AllSchedules(ctx context.Context) ([]Schedule, error) {
	members, err := s.rdb.SMembers(ctx, allSchedulesKey).Result()
	if err != nil {
		return nil, err
	}
	refs := make([][2]string, 0, len(members))
	for _, m := range members {
		if ws, name, ok := strings.Cut(m, "/"); ok {
			refs = append(refs, [2]string{ws, name})
		}
	}
	return s.schedules(ctx, refs)
}

// schedules reads the schedules refs names (workspace, name) in one round
// trip, leaving out those deleted meanwhile.
func (s *Store) schedules(ctx context.Context, refs [][2]string) ([]Schedule, error) {
	cmds := make([]*redis.MapStringStringCmd, 0, len(refs))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range refs {
			if validScheduleName(r[1]) {
				cmds = append(cmds, p.HGetAll(ctx, scheduleKey(r[0], r[1])))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]Schedule, 0, len(cmds))
	for _, c := range cmds {
		if m := c.Val(); len(m) > 0 && m["def"] != "" {
			if sc, err := decodeSchedule(m); err == nil {
				out = append(out, *sc)
			}
		}
	}
	return out, nil
}

// DeleteSchedule removes schedule name of ws and its history; ErrNotFound
// if there is none. Its tick claims expire on their own.
func (s *Store) DeleteSchedule(ctx context.Context, ws, name string) error {
	if !validScheduleName(name) {
		return ErrNotFound
	}
	n, err := deleteScheduleScript.Run(ctx, s.rdb,
		[]string{scheduleKey(ws, name), scheduleHistKey(ws, name), scheduleLockKey(ws, name), wsSchedulesKey(ws), allSchedulesKey},
		name, ws+"/"+name).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// UpdateSchedule changes the definition of schedule name of ws with
// change, which gets the schedule as stored and edits it in place, and may
// move Since (so that the ticks at or before it never fire); its firing
// state otherwise stays. The result is written only if nobody changed the
// schedule since it was read (WATCH: a patch, a tick claimed, a run
// recorded), else change runs again on what is there now, so concurrent
// updates never undo each other. ID, workspace and name are kept whatever
// change does. ErrNotFound if there is none; change's error is returned as
// it is.
func (s *Store) UpdateSchedule(ctx context.Context, ws, name string, change func(*Schedule) error) (*Schedule, error) {
	if !validScheduleName(name) {
		return nil, ErrNotFound
	}
	key := scheduleKey(ws, name)
	var out *Schedule
	for range casAttempts {
		err := s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			m, err := tx.HGetAll(ctx, key).Result()
			if err != nil {
				return err
			}
			if len(m) == 0 || m["def"] == "" {
				return ErrNotFound
			}
			sc, err := decodeSchedule(m)
			if err != nil {
				return err
			}
			id, since := sc.ID, sc.Since
			if err := change(sc); err != nil {
				return err
			}
			sc.ID, sc.Workspace, sc.Name = id, ws, name
			def, err := json.Marshal(sc)
			if err != nil {
				return err
			}
			fields := []any{"def", def}
			if !sc.Since.Equal(since) {
				fields = append(fields, "since", msString(sc.Since))
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, key, fields...)
				return nil
			})
			out = sc
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			if err != nil {
				return nil, err
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("schedule %q kept changing: %w", name, ErrConflict)
}

// SetSchedulePaused pauses or resumes schedule name of ws; ErrNotFound if
// there is none. Resuming a paused schedule moves Since to now, so the ticks
// it missed while paused never fire.
func (s *Store) SetSchedulePaused(ctx context.Context, ws, name string, paused bool, now time.Time) error {
	if !validScheduleName(name) {
		return ErrNotFound
	}
	flag := "0"
	if paused {
		flag = "1"
	}
	n, err := pauseScheduleScript.Run(ctx, s.rdb, []string{scheduleKey(ws, name)}, flag, msString(now)).Int()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// ClaimScheduleTick takes tick of schedule sc for holder; true when this call
// took it and the caller must now fire it (or record why not). A tick is
// taken at most once, whatever the number of callers: the claim is a key
// set only if absent, kept for ttl, and the same step moves the schedule's
// LastTick to tick, so nobody looks at that tick or an earlier one again.
// A schedule that is paused, deleted or replaced by a new one of the same
// name, or whose Since or LastTick is at or after tick, is not claimed.
func (s *Store) ClaimScheduleTick(ctx context.Context, sc *Schedule, tick time.Time, holder string, ttl time.Duration) (bool, error) {
	n, err := claimTickScript.Run(ctx, s.rdb,
		[]string{scheduleKey(sc.Workspace, sc.Name), tickKey(sc.Workspace, sc.Name, sc.ID, tick)},
		sc.ID, msString(tick), ttl.Milliseconds(), holder).Int()
	return n == 1, err
}

// RecordScheduleRun adds run to the history of schedule sc (newest first,
// the latest keep entries), and makes its job the schedule's latest. A run
// of a schedule deleted meanwhile is dropped.
func (s *Store) RecordScheduleRun(ctx context.Context, sc *Schedule, run ScheduleRun, keep int) error {
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	fired := ""
	if run.FiredAt != nil {
		fired = msString(*run.FiredAt)
	}
	return recordRunScript.Run(ctx, s.rdb, []string{scheduleKey(sc.Workspace, sc.Name), scheduleHistKey(sc.Workspace, sc.Name)},
		sc.ID, b, keep, run.JobID, fired).Err()
}

// CreateScheduledJob is CreateJob for run of schedule sc, which made job j
// (run.JobID): in the same MULTI it records run as RecordScheduleRun does,
// so the schedule names its latest job from the moment that job exists. A
// gateway that dies on the way leaves both or neither, never a job that the
// schedule's concurrency policy does not see.
func (s *Store) CreateScheduledJob(ctx context.Context, j *api.Job, sc *Schedule, run ScheduleRun, keep int) error {
	spec, err := json.Marshal(j.Spec)
	if err != nil {
		return fmt.Errorf("encode spec: %w", err)
	}
	b, err := json.Marshal(run)
	if err != nil {
		return err
	}
	fired := ""
	if run.FiredAt != nil {
		fired = msString(*run.FiredAt)
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		writeJob(ctx, p, j, spec)
		recordRunScript.Eval(ctx, p, []string{scheduleKey(sc.Workspace, sc.Name), scheduleHistKey(sc.Workspace, sc.Name)},
			sc.ID, b, keep, run.JobID, fired)
		return nil
	})
	return err
}

// ScheduleHistory returns up to n runs of schedule name of ws, newest first.
func (s *Store) ScheduleHistory(ctx context.Context, ws, name string, n int64) ([]ScheduleRun, error) {
	if !validScheduleName(name) {
		return nil, ErrNotFound
	}
	raw, err := s.rdb.LRange(ctx, scheduleHistKey(ws, name), 0, n-1).Result()
	if err != nil {
		return nil, err
	}
	out := make([]ScheduleRun, 0, len(raw))
	for _, r := range raw {
		var run ScheduleRun
		if json.Unmarshal([]byte(r), &run) == nil {
			out = append(out, run)
		}
	}
	return out, nil
}

// LockSchedule takes the firing lock of schedule name of ws for token, for
// at most ttl; false when someone else holds it.
func (s *Store) LockSchedule(ctx context.Context, ws, name, token string, ttl time.Duration) (bool, error) {
	return s.rdb.SetNX(ctx, scheduleLockKey(ws, name), token, ttl).Result()
}

// UnlockSchedule releases the firing lock if token still holds it.
func (s *Store) UnlockSchedule(ctx context.Context, ws, name, token string) error {
	return deleteIfValueScript.Run(ctx, s.rdb, []string{scheduleLockKey(ws, name)}, token).Err()
}
