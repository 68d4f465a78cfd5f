package redisconn

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"
)

func TestParseForms(t *testing.T) {
	for _, tc := range []struct {
		url        string
		mode       Mode
		addrs      []string
		master     string
		db         int
		user, pass string
		sUser      string
		sPass      string
		tls        bool
	}{
		{url: "redis://127.0.0.1:6379/0", mode: Single, addrs: []string{"127.0.0.1:6379"}},
		{url: "redis://127.0.0.1", mode: Single, addrs: []string{"127.0.0.1:6379"}},
		{url: "redis://:pw@127.0.0.1:7000/3", mode: Single, addrs: []string{"127.0.0.1:7000"}, db: 3, pass: "pw"},
		{url: "redis://u:pw@127.0.0.1:7000/3", mode: Single, addrs: []string{"127.0.0.1:7000"}, db: 3, user: "u", pass: "pw"},
		{url: "rediss://127.0.0.1:6380", mode: Single, addrs: []string{"127.0.0.1:6380"}, tls: true},
		{url: "redis+sentinel://:pass@127.0.0.1:26379,127.0.0.2:26379/mymaster/0?sentinel_password=x", mode: Sentinel,
			addrs: []string{"127.0.0.1:26379", "127.0.0.2:26379"}, master: "mymaster", pass: "pass", sPass: "x"},
		{url: "redis+sentinel://127.0.0.1:26379/mymaster", mode: Sentinel, addrs: []string{"127.0.0.1:26379"}, master: "mymaster"},
		{url: "redis+sentinel://127.0.0.1:26379/mymaster/", mode: Sentinel, addrs: []string{"127.0.0.1:26379"}, master: "mymaster"},
		{url: "redis+sentinel://u:p@127.0.0.1:26379,127.0.0.2:26379,127.0.0.3:26379/mymaster/2?sentinel_username=su&sentinel_password=sp", mode: Sentinel,
			addrs: []string{"127.0.0.1:26379", "127.0.0.2:26379", "127.0.0.3:26379"}, master: "mymaster", db: 2, user: "u", pass: "p", sUser: "su", sPass: "sp"},
		{url: "redis+sentinel://[::1]:26379,127.0.0.1:26380/m", mode: Sentinel, addrs: []string{"[::1]:26379", "127.0.0.1:26380"}, master: "m"},
		{url: "rediss+sentinel://:pass@127.0.0.1:26379/mymaster/1", mode: Sentinel, addrs: []string{"127.0.0.1:26379"}, master: "mymaster", db: 1, pass: "pass", tls: true},
		{url: "redis+cluster://127.0.0.1:7000,127.0.0.2:7001", mode: Cluster, addrs: []string{"127.0.0.1:7000", "127.0.0.2:7001"}},
		{url: "redis+cluster://:pw@127.0.0.1:7000,127.0.0.2:7001/0", mode: Cluster, addrs: []string{"127.0.0.1:7000", "127.0.0.2:7001"}, pass: "pw"},
		{url: "rediss+cluster://127.0.0.1:7000", mode: Cluster, addrs: []string{"127.0.0.1:7000"}, tls: true},
	} {
		t.Run(tc.url, func(t *testing.T) {
			c, err := Parse(tc.url)
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tc.mode || !slices.Equal(c.Addrs, tc.addrs) || c.MasterName != tc.master || c.DB != tc.db ||
				c.Username != tc.user || c.Password != tc.pass || c.SentinelUsername != tc.sUser || c.SentinelPassword != tc.sPass ||
				(c.TLS != nil) != tc.tls {
				t.Fatalf("got mode=%v addrs=%v master=%q db=%d user=%q pass=%q suser=%q spass=%q tls=%v",
					c.Mode, c.Addrs, c.MasterName, c.DB, c.Username, c.Password, c.SentinelUsername, c.SentinelPassword, c.TLS != nil)
			}
			if s := c.String(); strings.Contains(s, "pass") && tc.pass == "pass" {
				t.Fatalf("String() shows a password: %s", s)
			}
			rdb := c.NewClient()
			rdb.Close()
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://127.0.0.1:6379", `scheme "http"`},
		{"redis+sentinal://127.0.0.1:26379/m", `scheme "redis+sentinal"`},
		{"redis+sentinel://127.0.0.1:26379", "primary's name"},
		{"redis+sentinel://127.0.0.1:26379/", "primary's name"},
		{"redis+sentinel://127.0.0.1:26379/mymaster/x", `database "x"`},
		{"redis+sentinel://127.0.0.1:26379/mymaster/-1", `database "-1"`},
		{"redis+sentinel://127.0.0.1:26379/mymaster/0/1", `database "0/1"`},
		{"redis+cluster://127.0.0.1:7000/1", "only database 0"},
		{"redis+cluster://127.0.0.1:7000/0/1", "only database 0"},
		{"redis+sentinel://127.0.0.1,127.0.0.2:26379/mymaster", `address "127.0.0.1"`},
		{"redis+cluster://127.0.0.1:7000,127.0.0.2", `address "127.0.0.2"`},
		{"redis+cluster://", "no host:port"},
		{"redis+sentinel://127.0.0.1:26379,,127.0.0.2:x/m", `address "127.0.0.2:x"`},
		{"redis+sentinel://:26379/m", `address ":26379"`},
		{"redis+cluster://127.0.0.1:0", `address "127.0.0.1:0"`},
		{"redis://127.0.0.1:6379/x", "redis url"},
		{"redis+sentinel://127.0.0.1:26379/m?sentinel_pasword=x", `query option "sentinel_pasword"`},
		{"redis+sentinel://127.0.0.1:26379/m?dial_timeout=1s", `query option "dial_timeout"`},
		{"redis+cluster://127.0.0.1:7000?dial_timeout=1s", `query option "dial_timeout"`},
		{"redis+cluster://127.0.0.1:7000/0?pool_size=3", `query option "pool_size"`},
		{"redis://127.0.0.1:6379?pool_sise=3", "pool_sise"},
	} {
		t.Run(tc.url, func(t *testing.T) {
			_, err := Parse(tc.url)
			if err == nil {
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

func TestSetCANeedsTLS(t *testing.T) {
	c, err := Parse("redis+sentinel://127.0.0.1:26379/m")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SetCA("/nonexistent"); err == nil || !strings.Contains(err.Error(), "--redis-ca-file") {
		t.Fatalf("SetCA on a plain URL: %v", err)
	}
}

func TestParseErrorHidesPassword(t *testing.T) {
	for _, u := range []string{"redis+sentinel://:s3cret@127.0.0.1:26379,127.0.0.2:x/m", "redis://:s3cret@127.0.0.1:bad/0", "redis+cluster://:s3cret@127.0.0.1:7000/%zz"} {
		_, err := Parse(u)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) = %v: want an error without the password", u, err)
		}
	}
}

// A password with an unescaped / ? or # splits where net/url would split
// the URL; no piece of it may show in the error.
func TestParseErrorHidesUnescapedPassword(t *testing.T) {
	// Every piece of user info here (QUSR, QPWA, QPWB) is a string that
	// no error text has by chance.
	for _, u := range []string{
		"redis+sentinel://QUSR:QPWA#QPWB@h:1/m",
		"redis+sentinel://QUSR:QPWA/QPWB@h:1/m",
		"redis+sentinel://QUSR:QPWA?QPWB@h:1/m",
		"redis+cluster://:QPWA/QPWB@h:6379",
		"redis+cluster://:QPWA#QPWB@h:6379",
		"redis+cluster://QUSR:QPWA%zzQPWB@h:6379",
		"redis://:QPWA/QPWB@h:6379",
		"redis://:QPWA?QPWB@h:6379",
		"redis://:QPWA#QPWB@h:6379",
		"redis://QUSR:12/QPWB@h:6379",
		"redis://QUSR:12#QPWB@h:6379",
		"redis://QUSR:12?QPWB@h:6379",
		"redis://:QPWA%zzQPWB@h:6379",
		"rediss://:QPWA/QPWB@h:6379/0",
	} {
		t.Run(u, func(t *testing.T) {
			_, err := Parse(u)
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			if !strings.Contains(msg, "percent-encode") {
				t.Errorf("error %q does not say to percent-encode", msg)
			}
			for _, p := range []string{"QUSR", "QPWA", "QPWB"} {
				if strings.Contains(msg, p) {
					t.Errorf("error %q contains %q from the user info", msg, p)
				}
			}
		})
	}
}

func TestAnother(t *testing.T) {
	for _, u := range []string{"redis://127.0.0.1:1/2", "redis+sentinel://127.0.0.1:1/m/2", "redis+cluster://127.0.0.1:1"} {
		c, err := Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		rdb := c.NewClient()
		other, err := Another(rdb)
		if err != nil {
			t.Fatalf("%s: %v", u, err)
		}
		if other == rdb || fmt.Sprintf("%T", other) != fmt.Sprintf("%T", rdb) {
			t.Fatalf("%s: Another gave %T %p for %T %p", u, other, other, rdb, rdb)
		}
		if o, ok := other.(*redis.Client); ok && o.Options().DB != 2 {
			t.Fatalf("%s: db %d", u, o.Options().DB)
		}
		other.Close()
		rdb.Close()
	}
	foreign := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "m", SentinelAddrs: []string{"127.0.0.1:1"}})
	defer foreign.Close()
	if _, err := Another(foreign); err == nil {
		t.Fatal("Another copied a Sentinel client it did not make")
	}
}
