// Package redisconn opens jobgate's Redis connection from one URL, in any of
// the three forms a deployment grows through: one server, a primary with
// replicas behind Redis Sentinel (failover), or a Redis Cluster (sharding).
//
//	redis://[[user]:pass@]host:port[/db]            one server (rediss:// for TLS)
//	redis+sentinel://[[user]:pass@]h1:26379,h2:26379/mymaster[/db][?sentinel_password=P&sentinel_username=U]
//	redis+cluster://[[user]:pass@]h1:7000,h2:7001,...
//
// rediss+sentinel:// and rediss+cluster:// are the TLS forms. Gateways,
// workers and the scoring router all take the same URL, and asynq runs on
// the client made here, so every part follows a failover the same way.
package redisconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/redis/go-redis/v9"
)

// Mode is the shape of the Redis deployment a URL names.
type Mode int

const (
	Single Mode = iota
	Sentinel
	Cluster
)

func (m Mode) String() string {
	switch m {
	case Sentinel:
		return "sentinel"
	case Cluster:
		return "cluster"
	default:
		return "single"
	}
}

// Config is a parsed Redis URL.
type Config struct {
	Mode Mode
	// Addrs are the server (Single), the sentinels (Sentinel) or the
	// cluster's seed nodes (Cluster), as host:port.
	Addrs []string
	// MasterName is the primary's name the sentinels know (Sentinel only).
	MasterName string
	DB         int
	Username   string
	Password   string
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// themselves (Sentinel only).
	SentinelUsername string
	SentinelPassword string
	// TLS is set for the rediss forms.
	TLS *tls.Config

	// single keeps go-redis's own parse of a plain URL, so its query
	// options (dial_timeout, pool_size, ...) keep working.
	single *redis.Options
}

// Parse reads a Redis URL in one of the forms above.
func Parse(raw string) (*Config, error) {
	// A host list (h1:26379,h2:26379) is no valid URL host to net/url, so it
	// is cut out first and the rest parsed with a placeholder host.
	hosts, rest, hasUser, ok := cutHosts(raw)
	if !ok {
		return nil, errMalformedAuth
	}
	u, err := url.Parse(rest)
	if err != nil {
		return nil, parseErr(err, hasUser)
	}
	c := &Config{}
	switch u.Scheme {
	case "redis", "rediss", "unix":
		o, err := redis.ParseURL(raw)
		if err != nil {
			return nil, parseErr(err, hasUser)
		}
		c.Mode, c.Addrs, c.DB, c.Username, c.Password, c.TLS, c.single = Single, []string{o.Addr}, o.DB, o.Username, o.Password, o.TLSConfig, o
		return c, nil
	case "redis+sentinel", "rediss+sentinel":
		c.Mode = Sentinel
	case "redis+cluster", "rediss+cluster":
		c.Mode = Cluster
	default:
		return nil, fmt.Errorf("redis url: scheme %q: want redis, rediss, redis+sentinel, rediss+sentinel, redis+cluster or rediss+cluster", u.Scheme)
	}
	if strings.HasPrefix(u.Scheme, "rediss") {
		c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
	}
	for _, a := range strings.Split(hosts, ",") {
		if a == "" {
			continue
		}
		if h, port, err := net.SplitHostPort(a); err != nil || h == "" || !validPort(port) {
			return nil, fmt.Errorf("redis url: address %q: want host:port", a)
		}
		c.Addrs = append(c.Addrs, a)
	}
	if len(c.Addrs) == 0 {
		return nil, errors.New("redis url: no host:port given")
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	switch c.Mode {
	case Sentinel:
		if len(parts) == 0 || parts[0] == "" {
			return nil, errors.New("redis url: redis+sentinel needs the primary's name as its path: redis+sentinel://h1:26379,h2:26379/mymaster[/db]")
		}
		c.MasterName = parts[0]
		if len(parts) > 1 {
			if c.DB, err = strconv.Atoi(parts[1]); err != nil || c.DB < 0 || len(parts) > 2 {
				return nil, fmt.Errorf("redis url: database %q: want a number", strings.Join(parts[1:], "/"))
			}
		}
		q := u.Query()
		for k := range q {
			if k != "sentinel_username" && k != "sentinel_password" {
				return nil, fmt.Errorf("redis url: query option %q: redis+sentinel takes only sentinel_username and sentinel_password", k)
			}
		}
		c.SentinelUsername, c.SentinelPassword = q.Get("sentinel_username"), q.Get("sentinel_password")
	case Cluster:
		if len(parts) > 1 || parts[0] != "" && parts[0] != "0" {
			return nil, errors.New("redis url: a Redis Cluster has only database 0")
		}
		// Refused rather than ignored: a dial_timeout or pool_size that
		// silently does nothing is worse than an error.
		for k := range u.Query() {
			return nil, fmt.Errorf("redis url: query option %q: redis+cluster takes no query options", k)
		}
	}
	return c, nil
}

// errMalformedAuth never repeats the URL: the part that looks wrong may be
// a piece of the password.
var errMalformedAuth = errors.New("redis url: the user info or host list is malformed (percent-encode / ? # @ in passwords)")

// parseErr strips the URL from a url.Error (it repeats the whole URL,
// password included); where the URL has user info, the rest of a url.Error
// may quote a piece of it too (an invalid escape, a "port" that is half a
// password), so then only a fixed text is given.
func parseErr(err error, hasUser bool) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		if hasUser {
			return errMalformedAuth
		}
		err = ue.Err
	}
	return fmt.Errorf("redis url: %w", err)
}

func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n > 0 && n < 65536
}

// cutHosts returns the host list of a scheme://[userinfo@]hosts/path?query
// URL and the URL with the list replaced by one placeholder host, and
// whether the URL has user info. ok is false where an @ follows the first
// / ? or #: a password with one of those unescaped, whose pieces would
// otherwise be taken for hosts, a path or a query and quoted in errors.
func cutHosts(raw string) (hosts, rest string, hasUser, ok bool) {
	scheme, after, found := strings.Cut(raw, "://")
	if !found {
		return "", raw, strings.Contains(raw, "@"), true
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	auth, tail := after[:end], after[end:]
	if strings.Contains(tail, "@") {
		return "", "", true, false
	}
	user := ""
	if at := strings.LastIndex(auth, "@"); at >= 0 {
		user, auth = auth[:at+1], auth[at+1:]
	}
	return auth, scheme + "://" + user + "hosts" + tail, user != "", true
}

// SetCA makes the TLS forms trust the CA in file (PEM) instead of the
// system's.
func (c *Config) SetCA(file string) error {
	if c.TLS == nil {
		return errors.New("--redis-ca-file needs a TLS URL (rediss://, rediss+sentinel:// or rediss+cluster://)")
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("redis CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return fmt.Errorf("redis CA %s: no PEM certificate in it", file)
	}
	c.TLS.RootCAs = pool
	return nil
}

// NewClient makes a new client for c: a *redis.Client for Single and
// Sentinel (a failover client that follows the sentinels' primary), a
// *redis.ClusterClient for Cluster. Each call makes a separate pool.
func (c *Config) NewClient() redis.UniversalClient {
	switch c.Mode {
	case Sentinel:
		rdb := redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.Addrs,
			SentinelUsername: c.SentinelUsername, SentinelPassword: c.SentinelPassword,
			Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: c.TLS,
		})
		remember(rdb, c)
		return rdb
	case Cluster:
		rdb := redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.Addrs, Username: c.Username, Password: c.Password, TLSConfig: c.TLS,
		})
		remember(rdb, c)
		return rdb
	default:
		o := *c.single
		o.TLSConfig = c.TLS
		return redis.NewClient(&o)
	}
}

// made maps the failover and cluster clients NewClient made (weakly: a
// client that is gone takes its entry along) to their Config, for Another.
var made = struct {
	sync.Mutex
	m map[any]*Config
}{m: map[any]*Config{}}

func remember[T any](rdb *T, c *Config) {
	k := weak.Make(rdb)
	made.Lock()
	made.m[k] = c
	made.Unlock()
	runtime.AddCleanup(rdb, func(k weak.Pointer[T]) {
		made.Lock()
		delete(made.m, k)
		made.Unlock()
	}, k)
}

func configOf[T any](rdb *T) *Config {
	made.Lock()
	defer made.Unlock()
	return made.m[weak.Make(rdb)]
}

// Another makes a new client, with a pool of its own, to the same Redis as
// rdb: for a part that hooks its client (the worker's asynq server), so
// the hook touches nothing else. A failover client gets a failover client
// of its own (one that also drops its connections to a demoted primary),
// which needs rdb to come from NewClient; a plain or cluster client is
// copied from its options.
func Another(rdb redis.UniversalClient) (redis.UniversalClient, error) {
	switch c := rdb.(type) {
	case *redis.Client:
		if cfg := configOf(c); cfg != nil {
			return cfg.NewClient(), nil
		}
		o := *c.Options()
		if o.Addr == "FailoverClient" { // go-redis's name for a Sentinel client's address
			return nil, errors.New("redisconn.Another: a Sentinel client not made by redisconn (make it with NewClient)")
		}
		return redis.NewClient(&o), nil
	case *redis.ClusterClient:
		if cfg := configOf(c); cfg != nil {
			return cfg.NewClient(), nil
		}
		o := *c.Options()
		return redis.NewClusterClient(&o), nil
	}
	return nil, fmt.Errorf("redisconn.Another: cannot copy a %T", rdb)
}

// String names the deployment without its passwords, for logs and errors.
func (c *Config) String() string {
	switch c.Mode {
	case Sentinel:
		return fmt.Sprintf("primary %q of the sentinels at %s", c.MasterName, strings.Join(c.Addrs, ","))
	case Cluster:
		return "the Redis Cluster at " + strings.Join(c.Addrs, ",")
	default:
		return c.Addrs[0]
	}
}

// Open parses url, trusts caFile when it is given, makes a client and checks
// that it answers within 5 s.
func Open(ctx context.Context, url, caFile string) (redis.UniversalClient, *Config, error) {
	c, err := Parse(url)
	if err != nil {
		return nil, nil, err
	}
	if caFile != "" {
		if err := c.SetCA(caFile); err != nil {
			return nil, nil, err
		}
	}
	rdb := c.NewClient()
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		rdb.Close()
		return nil, nil, fmt.Errorf("redis at %s does not answer: %w", c, err)
	}
	return rdb, c, nil
}
