package worker

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/queue"
)

func TestRuneCut(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		b    string
		max  int
		want int
	}{
		{name: "fits", b: "abc", max: 5, want: 3},
		{name: "ascii", b: "abcdef", max: 4, want: 4},
		{name: "before a two-byte character", b: "abcé", max: 4, want: 3},
		{name: "after it", b: "abcéd", max: 5, want: 5},
		{name: "inside a four-byte character", b: "a😀b", max: 3, want: 1},
		{name: "no room for the first character", b: "😀", max: 2, want: 0},
		{name: "not UTF-8", b: "\x80\x80\x80\x80\x80\x80", max: 5, want: 5},
	}
	for _, tt := range tests {
		if got := runeCut([]byte(tt.b), tt.max); got != tt.want {
			t.Errorf("%s: runeCut(%q, %d) = %d, want %d", tt.name, tt.b, tt.max, got, tt.want)
		}
	}
}

func TestIncompleteRune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		b    string
		want int
	}{
		{"", 0},
		{"abc", 0},
		{"abcé", 0},
		{"abc\xc3", 1},
		{"abc\xf0\x9f\x98", 3},
		{"abc\xff", 0},      // invalid, not the start of anything: send it
		{"\x80\x80\x80", 0}, // continuation bytes without a start
	}
	for _, tt := range tests {
		if got := incompleteRune([]byte(tt.b)); got != tt.want {
			t.Errorf("incompleteRune(%q) = %d, want %d", tt.b, got, tt.want)
		}
	}
}

// readExec reads a session's whole stream.
func readExec(t *testing.T, rdb redis.UniversalClient, session string) []queue.ExecEvent {
	t.Helper()
	var all []queue.ExecEvent
	after := "0"
	for {
		events, err := queue.ReadExec(context.Background(), rdb, session, after, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(events) == 0 {
			return all
		}
		all = append(all, events...)
		after = events[len(events)-1].ID
	}
}

// TestExecOutput: what a command writes reaches the session's stream in
// order, in bounded chunks that never split a UTF-8 character, numbered
// without gaps, and ends with the final event.
func TestExecOutput(t *testing.T) {
	t.Parallel()
	rdb := testenv.RedisClient(t, testenv.Redis(t))
	out := newExecOutput(t.Context(), rdb, "s1", slog.New(slog.DiscardHandler))
	stdout, stderr := out.writer(queue.ExecStdout), out.writer(queue.ExecStderr)

	big := strings.Repeat("é", 3*queue.ExecChunkBytes/2) // 3 chunks' worth, 2-byte characters
	writes := []struct {
		w    *streamWriter
		data string
	}{
		{stdout, "h\xc3"}, // a character split between two writes
		{stdout, "\xa9llo\n"},
		{stderr, "oops\n"},
		{stdout, big},
		{stdout, "\xff\xfe binary\n"},
		{stderr, "ends mid-character \xe2\x82"},
	}
	for _, wr := range writes {
		if n, err := wr.w.Write([]byte(wr.data)); n != len(wr.data) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	out.finish(queue.ExecEvent{Kind: queue.ExecExited, ExitCode: 3})

	events := readExec(t, rdb, "s1")
	var gotOut, gotErr bytes.Buffer
	var kinds []string
	for i, e := range events {
		if e.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
		if len(e.Data) > queue.ExecChunkBytes {
			t.Errorf("event %d carries %d bytes, more than %d", i, len(e.Data), queue.ExecChunkBytes)
		}
		if e.Kind == queue.ExecStdout && !bytes.Contains(e.Data, []byte("\xff")) && !utf8.Valid(e.Data) {
			t.Errorf("event %d splits a character: ...%q", i, e.Data[max(0, len(e.Data)-4):])
		}
		switch e.Kind {
		case queue.ExecStdout:
			gotOut.Write(e.Data)
		case queue.ExecStderr:
			gotErr.Write(e.Data)
		}
		if len(kinds) == 0 || kinds[len(kinds)-1] != string(e.Kind) {
			kinds = append(kinds, string(e.Kind))
		}
	}
	if want := "héllo\n" + big + "\xff\xfe binary\n"; gotOut.String() != want {
		t.Errorf("stdout: got %d bytes, want %d", gotOut.Len(), len(want))
	}
	if want := "oops\nends mid-character \xe2\x82"; gotErr.String() != want {
		t.Errorf("stderr = %q, want %q", gotErr.String(), want)
	}
	if want := "stdout stderr stdout stderr exited"; strings.Join(kinds, " ") != want {
		t.Errorf("kinds in order: %s, want %s", strings.Join(kinds, " "), want)
	}
	if last := events[len(events)-1]; last.Kind != queue.ExecExited || last.ExitCode != 3 {
		t.Errorf("last event %+v, want exited 3", last)
	}
	if ttl := rdb.TTL(context.Background(), queue.ExecStreamKey("s1")).Val(); ttl <= 0 || ttl > queue.ExecStreamTTL {
		t.Errorf("stream TTL %s, want up to %s", ttl, queue.ExecStreamTTL)
	}
}
