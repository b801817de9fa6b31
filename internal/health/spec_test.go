package health

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseStatusRanges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      []string
		want    []StatusRange
		wantErr string
	}{
		{"single", []string{"200"}, []StatusRange{{200, 200}}, ""},
		{"class", []string{"2xx", "3XX"}, []StatusRange{{200, 299}, {300, 399}}, ""},
		{"range", []string{"200-399"}, []StatusRange{{200, 399}}, ""},
		{"mixed", []string{"204", "301-302", " 4xx "}, []StatusRange{{204, 204}, {301, 302}, {400, 499}}, ""},
		{"empty list", nil, []StatusRange{}, ""},
		{"reversed", []string{"399-200"}, nil, `expect_status "399-200"`},
		{"out of range", []string{"600"}, nil, `expect_status "600"`},
		{"class 6", []string{"6xx"}, nil, `expect_status "6xx"`},
		{"word", []string{"ok"}, nil, `expect_status "ok"`},
		{"two digits", []string{"20"}, nil, `expect_status "20"`},
		{"open range", []string{"200-"}, nil, `expect_status "200-"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseStatusRanges(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ranges (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewCheckerRejects(t *testing.T) {
	t.Parallel()
	base := Spec{Interval: time.Second, Timeout: time.Second, Rise: 1, Fall: 1}
	tests := []struct {
		name string
		spec func(*Spec)
		want []string // every one must be in the error
	}{
		{"unknown type", func(s *Spec) { s.Type = "icmp" }, []string{`type: unknown value "icmp"; want "exec", "http", "https", "ping", "tcp" or "udp"`}},
		{"every timing problem at once", func(s *Spec) {
			s.Type, s.Interval, s.Timeout, s.Jitter, s.Rise = "tcp", 0, -1, -1, 0
		}, []string{"interval: want a duration above 0, got 0s", "timeout: want a duration above 0, got -1ns", "jitter: want a non-negative duration, got -1ns", "rise: want 1-100, got 0"}},
		{"http path", func(s *Spec) { s.Type, s.Path = "http", "index.html" }, []string{`path: want a path starting with / and without spaces, got "index.html"`}},
		{"http status", func(s *Spec) { s.Type, s.ExpectStatus = "http", []string{"300-200"} }, []string{`expect_status: want statuses like "200", "2xx" or "200-399", got "300-200"`}},
		{"http regex", func(s *Spec) { s.Type, s.ExpectRegex = "https", "(" }, []string{"expect_regex: invalid regular expression"}},
		{"udp without payload", func(s *Spec) { s.Type = "udp" }, []string{"send: required for a udp check"}},
		{"exec without command", func(s *Spec) { s.Type, s.Command = "exec", []string{""} }, []string{"command: required for an exec check"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base
			tt.spec(&s)
			_, err := NewChecker(s)
			if err == nil {
				t.Fatalf("got no error, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()
	base := Spec{Type: "http", Interval: time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
		Method: "GET", Path: "/", ExpectStatus: []string{"200-399"}, ExpectBody: "Test Page", ExpectRegex: "a+"}
	tests := []struct {
		name string
		spec func(*Spec)
		same bool
	}{
		{"initial state", func(s *Spec) { s.InitialUp = !s.InitialUp }, true},
		{"path", func(s *Spec) { s.Path = "/health" }, false},
		{"interval", func(s *Spec) { s.Interval = 2 * time.Second }, false},
		{"rise", func(s *Spec) { s.Rise = 3 }, false},
		{"regex", func(s *Spec) { s.ExpectRegex = "b+" }, false},
		{"no regex", func(s *Spec) { s.ExpectRegex = "" }, false},
		{"statuses", func(s *Spec) { s.ExpectStatus = []string{"200"} }, false},
		{"send", func(s *Spec) { s.Send = []byte("PING\r\n") }, false},
		{"expect", func(s *Spec) { s.Expect = []byte("+PONG") }, false},
		{"host", func(s *Spec) { s.Host = "example.com" }, false},
		{"command split differently", func(s *Spec) { s.Command = []string{"a b"} }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := base
			tt.spec(&s)
			if got := s.fingerprint() == base.fingerprint(); got != tt.same {
				t.Errorf("got same %v, want %v", got, tt.same)
			}
		})
	}
	a := Spec{Type: "exec", Command: []string{"a", "b"}}
	b := Spec{Type: "exec", Command: []string{"a b"}}
	if a.fingerprint() == b.fingerprint() {
		t.Errorf("got one fingerprint for argv [a b] and [\"a b\"], want two")
	}
}
