package proxy

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"

	"github.com/fulcrum-lb/fulcrum/internal/balancer"
	"github.com/fulcrum-lb/fulcrum/internal/l7/http1"
)

// cookieIDLen is the length of a backend's cookie id: 64 bits of HMAC in
// hex, plenty to tell a service's backends apart and not worth forging.
const cookieIDLen = 16

// cookieID is one backend's persistence cookie, rendered once per
// snapshot.
type cookieID struct {
	id [cookieIDLen]byte
	b  *balancer.Backend
	// setCookie is the whole "Set-Cookie: ...\r\n" line and the
	// Cache-Control line after it; value is the Set-Cookie value alone.
	setCookie []byte
	value     string
}

func newCookieID(c *Cookie, b *balancer.Backend) cookieID {
	mac := hmac.New(sha256.New, c.Key)
	mac.Write([]byte(b.Addr.String()))
	var id cookieID
	hex.Encode(id.id[:], mac.Sum(nil)[:cookieIDLen/2])
	id.b = b
	line := []byte("Set-Cookie: ")
	line = append(line, c.Name...)
	line = append(line, '=')
	line = append(line, id.id[:]...)
	line = append(line, "; Path=/"...)
	if c.MaxAge > 0 {
		line = append(line, "; Max-Age="...)
		line = strconv.AppendInt(line, int64(c.MaxAge.Seconds()), 10)
	}
	if c.Secure {
		line = append(line, "; Secure"...)
	}
	if c.HTTPOnly {
		line = append(line, "; HttpOnly"...)
	}
	// nocache: a response that pins a client must not be served to others
	// from a shared cache.
	id.value = string(line[len("Set-Cookie: "):])
	line = append(line, "\r\nCache-Control: private\r\n"...)
	id.setCookie = line
	return id
}

// cookieBackend returns the backend named by the request's persistence
// cookie, or nil when there is none or its id is unknown.
func (r *route) cookieBackend(name string, req *http1.Request) *cookieID {
	if len(r.cookies) == 0 {
		return nil
	}
	for _, f := range req.Fields() {
		if !equalFold(f.Name, "cookie") {
			continue
		}
		v := findCookie(f.Value, name)
		if len(v) != cookieIDLen {
			continue
		}
		for i := range r.cookies {
			if string(r.cookies[i].id[:]) == string(v) {
				return &r.cookies[i]
			}
		}
	}
	return nil
}

// cookieFor returns b's cookie in this route, or nil (the fallback has
// none: clients return to real backends as soon as one is back).
func (r *route) cookieFor(b *balancer.Backend) *cookieID {
	for i := range r.cookies {
		if r.cookies[i].b == b {
			return &r.cookies[i]
		}
	}
	return nil
}

// findCookie returns the value of cookie name in a Cookie field value
// ("a=1; b=2"), or nil.
func findCookie(v []byte, name string) []byte {
	for len(v) > 0 {
		var pair []byte
		if i := bytes.IndexByte(v, ';'); i >= 0 {
			pair, v = v[:i], v[i+1:]
		} else {
			pair, v = v, nil
		}
		for len(pair) > 0 && (pair[0] == ' ' || pair[0] == '\t') {
			pair = pair[1:]
		}
		if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
			val := pair[len(name)+1:]
			for len(val) > 0 && (val[len(val)-1] == ' ' || val[len(val)-1] == '\t') {
				val = val[:len(val)-1]
			}
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			return val
		}
	}
	return nil
}
