package store

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/api"
)

// Limits on what a job may record as metrics. Past MaxMetricNames, points of
// new names are dropped (AppendMetrics says so with ErrMetricLimit); past
// MaxMetricPoints, the points with the lowest steps are trimmed.
const (
	// MaxMetricNames is how many metric names one job may have.
	MaxMetricNames = 1000
	// MaxMetricPoints is how many points one metric of a job keeps.
	MaxMetricPoints = 100_000
	// MaxMetricStep is the largest step: steps are sorted-set scores, which
	// are float64s, exact up to 2^53.
	MaxMetricStep = 1 << 53

	// metricsChunk bounds the points one script call writes, so Redis is never
	// held for long by a job that prints a burst of metrics.
	metricsChunk = 1000
)

// NextStep as a point's Step records it at the step after its metric's
// highest (0 for the first point), decided in the same step as the write.
const NextStep = -1

// ErrMetricLimit means points were dropped because the job already has
// MaxMetricNames metric names.
var ErrMetricLimit = errors.New("metric name limit reached")

// MetricPoint is one value of a job's metric at a step.
type MetricPoint struct {
	Name  string
	Step  int64
	Value float64
	// Time is when the value was reported.
	Time time.Time
}

// metricsTag is the hash tag of a job's metric keys: they are touched only
// with each other (appendMetricsScript, plain pipelines), never with the
// store's other keys, so on a Redis Cluster each job's series may live on
// any master rather than beside the core keys (see prefix).
func metricsTag(id string) string { return "{jobgate:job:" + id + "}" }

// metricsLastKey is a hash of metric name → its last reported value; its
// fields are also the job's metric names.
func metricsLastKey(id string) string { return metricsTag(id) + ":metrics" }

// metricKey is one metric's sorted set: score = step, one member per step.
func metricKey(id, name string) string { return metricsTag(id) + ":metric:" + name }

// ValidMetricName reports whether name may name a metric: a letter or _, then
// up to 127 letters, digits and _ . - /.
func ValidMetricName(name string) bool {
	if name == "" || len(name) > 128 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '_':
		case i > 0 && (c >= '0' && c <= '9' || c == '.' || c == '-' || c == '/'):
		default:
			return false
		}
	}
	return true
}

// A metric member is "step value time": the step makes it unique in its set
// (a step has one point), value is strconv's shortest 'g' form, time is
// RFC 3339 with nanoseconds in UTC.
func encodeMetricMember(p MetricPoint) string {
	return strconv.FormatInt(p.Step, 10) + " " + strconv.FormatFloat(p.Value, 'g', -1, 64) + " " +
		p.Time.UTC().Format(time.RFC3339Nano)
}

func decodeMetricMember(name, m string) (MetricPoint, error) {
	f := strings.SplitN(m, " ", 3)
	if len(f) != 3 {
		return MetricPoint{}, fmt.Errorf("metric %s: bad point %q", name, m)
	}
	step, err1 := strconv.ParseInt(f[0], 10, 64)
	value, err2 := strconv.ParseFloat(f[1], 64)
	t, err3 := time.Parse(time.RFC3339Nano, f[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return MetricPoint{}, fmt.Errorf("metric %s: bad point %q: %w", name, m, err)
	}
	return MetricPoint{Name: name, Step: step, Value: value, Time: t}, nil
}

// AppendMetrics records points of job id, in the order given. A point at a
// step the metric already has replaces it: the latest report of a step wins,
// so a job resumed from a checkpoint overwrites the steps it repeats. The
// job's last value of each metric (Job.Metrics) is the value reported last.
//
// Each metric keeps its MaxMetricPoints highest steps. Points of a new name
// once the job has MaxMetricNames names are dropped and the error wraps
// ErrMetricLimit; the other points are recorded. A point with an invalid name,
// a negative step or a value that is not finite is an error, and nothing of
// the call is recorded.
func (s *Store) AppendMetrics(ctx context.Context, id string, pts []MetricPoint) error {
	if !validID(id) {
		return fmt.Errorf("append metrics: job id %q: %w", id, ErrNotFound)
	}
	for _, p := range pts {
		switch {
		case !ValidMetricName(p.Name):
			return fmt.Errorf("append metrics of job %s: invalid metric name %q", id, p.Name)
		case (p.Step < 0 && p.Step != NextStep) || p.Step > MaxMetricStep:
			return fmt.Errorf("append metrics of job %s: metric %s: step %d is out of range [0, 2^53]", id, p.Name, p.Step)
		case math.IsNaN(p.Value) || math.IsInf(p.Value, 0):
			return fmt.Errorf("append metrics of job %s: metric %s: value %v is not finite", id, p.Name, p.Value)
		}
	}
	dropped := 0
	for i := 0; i < len(pts); i += metricsChunk {
		chunk := pts[i:min(i+metricsChunk, len(pts))]
		keys := make([]string, 0, 1+len(chunk))
		keys = append(keys, metricsLastKey(id))
		args := make([]any, 0, 2+4*len(chunk))
		args = append(args, MaxMetricNames, MaxMetricPoints)
		for _, p := range chunk {
			keys = append(keys, metricKey(id, p.Name))
			if p.Step == NextStep {
				// The script picks the step and puts it in front.
				member := encodeMetricMember(p)
				args = append(args, p.Name, "next", member[strings.IndexByte(member, ' ')+1:], strconv.FormatFloat(p.Value, 'g', -1, 64))
				continue
			}
			args = append(args, p.Name, p.Step, encodeMetricMember(p), strconv.FormatFloat(p.Value, 'g', -1, 64))
		}
		n, err := appendMetricsScript.Run(ctx, s.rdb, keys, args...).Int()
		if err != nil {
			return fmt.Errorf("append metrics of job %s: %w", id, err)
		}
		dropped += n
	}
	if dropped > 0 {
		return fmt.Errorf("job %s: %d points of new metric names dropped: a job may have at most %d metric names: %w",
			id, dropped, MaxMetricNames, ErrMetricLimit)
	}
	return nil
}

// Metrics returns job id's metrics, each in step order; with names, only
// those (a name the job does not have is left out). A job without metrics, or
// no job at all, has an empty map.
func (s *Store) Metrics(ctx context.Context, id string, names ...string) (map[string][]MetricPoint, error) {
	out := map[string][]MetricPoint{}
	if !validID(id) {
		return out, nil
	}
	if len(names) == 0 {
		var err error
		if names, err = s.rdb.HKeys(ctx, metricsLastKey(id)).Result(); err != nil {
			return nil, err
		}
	}
	cmds := make([]*redis.StringSliceCmd, 0, len(names))
	valid := make([]string, 0, len(names))
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, n := range names {
			if ValidMetricName(n) {
				valid = append(valid, n)
				cmds = append(cmds, p.ZRange(ctx, metricKey(id, n), 0, -1))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, c := range cmds {
		members := c.Val()
		if len(members) == 0 {
			continue
		}
		pts := make([]MetricPoint, len(members))
		for k, m := range members {
			if pts[k], err = decodeMetricMember(valid[i], m); err != nil {
				return nil, err
			}
		}
		out[valid[i]] = pts
	}
	return out, nil
}

// LastMetrics returns the last reported value of each of job id's metrics.
func (s *Store) LastMetrics(ctx context.Context, id string) (map[string]float64, error) {
	if !validID(id) {
		return map[string]float64{}, nil
	}
	m, err := s.rdb.HGetAll(ctx, metricsLastKey(id)).Result()
	if err != nil {
		return nil, err
	}
	return decodeLastMetrics(m), nil
}

func decodeLastMetrics(m map[string]string) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			out[k] = f
		}
	}
	return out
}

// lastMetricsCmds queues, in a pipeline that reads job records, a read of
// each job's last metric values; fillLastMetrics puts them in the records.
func lastMetricsCmds(ctx context.Context, p redis.Pipeliner, ids []string) []*redis.MapStringStringCmd {
	cmds := make([]*redis.MapStringStringCmd, len(ids))
	for i, id := range ids {
		cmds[i] = p.HGetAll(ctx, metricsLastKey(id))
	}
	return cmds
}

// fillLastMetrics sets Metrics of jobs[i] from cmds[i]; nil jobs are skipped
// and a job without metrics keeps a nil map.
func fillLastMetrics(jobs []*api.Job, cmds []*redis.MapStringStringCmd) {
	for i, j := range jobs {
		if j == nil || i >= len(cmds) {
			continue
		}
		if m := cmds[i].Val(); len(m) > 0 {
			j.Metrics = decodeLastMetrics(m)
		}
	}
}

// LatestPoints returns the point at the highest step of each of job id's
// metrics (what MLflow calls a run's latest metrics).
func (s *Store) LatestPoints(ctx context.Context, id string) (map[string]MetricPoint, error) {
	out := map[string]MetricPoint{}
	if !validID(id) {
		return out, nil
	}
	names, err := s.rdb.HKeys(ctx, metricsLastKey(id)).Result()
	if err != nil || len(names) == 0 {
		return out, err
	}
	cmds := make([]*redis.StringSliceCmd, len(names))
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, n := range names {
			cmds[i] = p.ZRange(ctx, metricKey(id, n), -1, -1)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i, n := range names {
		if m := cmds[i].Val(); len(m) == 1 {
			if p, err := decodeMetricMember(n, m[0]); err == nil {
				out[n] = p
			}
		}
	}
	return out, nil
}
