package http1

import "bytes"

// TargetForm is the form of a request target (RFC 9112 §3.2).
type TargetForm uint8

const (
	// OriginForm: "/path?query", what clients send to a server.
	OriginForm TargetForm = iota
	// AbsoluteForm: "http://host/path?query", what clients send to a
	// proxy, which servers must accept as well.
	AbsoluteForm
	// AuthorityForm: "host:port", CONNECT only.
	AuthorityForm
	// AsteriskForm: "*", OPTIONS only.
	AsteriskForm
)

func (f TargetForm) String() string {
	switch f {
	case OriginForm:
		return "origin-form"
	case AbsoluteForm:
		return "absolute-form"
	case AuthorityForm:
		return "authority-form"
	case AsteriskForm:
		return "asterisk-form"
	}
	return "TargetForm(?)"
}

// parseTarget classifies and validates a request target. For the absolute
// and authority forms it returns the authority, and for the absolute form
// where its path begins.
func parseTarget(method, t []byte) (form TargetForm, authority []byte, pathStart int, c code) {
	// Only visible ASCII: RFC 3986 has no place for raw UTF-8 or controls,
	// and they are where path normalisation differs between a proxy's
	// routing and a backend. No fragment either (RFC 9112 §3.2): a backend
	// that drops "#..." routes "/public#/../admin" unlike the proxy
	// (HAProxy's CVE-2023-45539).
	if len(t) == 0 || !validVchars(t) || bytes.IndexByte(t, '#') >= 0 {
		return 0, nil, 0, codeBadTarget
	}
	if string(method) == "CONNECT" {
		if !validAuthority(t, true, false) {
			return 0, nil, 0, codeBadTarget
		}
		return AuthorityForm, t, len(t), codeOK
	}
	switch {
	case t[0] == '/':
		if !validPathEscapes(t) {
			return 0, nil, 0, codeBadTarget
		}
		return OriginForm, nil, 0, codeOK
	case len(t) == 1 && t[0] == '*':
		if string(method) != "OPTIONS" {
			return 0, nil, 0, codeAsteriskNotOptions
		}
		return AsteriskForm, nil, 0, codeOK
	}
	var start int
	switch {
	case len(t) > 7 && equalFold(t[:7], "http://"):
		start = 7
	case len(t) > 8 && equalFold(t[:8], "https://"):
		start = 8
	default:
		// Other schemes mean nothing to an HTTP gateway.
		return 0, nil, 0, codeBadTarget
	}
	end := start
	for end < len(t) && t[end] != '/' && t[end] != '?' {
		end++
	}
	authority = t[start:end]
	if !validAuthority(authority, false, false) || !validPathEscapes(t[end:]) {
		return 0, nil, 0, codeBadTarget
	}
	return AbsoluteForm, authority, end, codeOK
}

// validPathEscapes checks that every '%' in the path (not the query, where
// raw '%' is common in the wild and harmless to routing) starts a
// pct-encoded octet; a backend decoding "%zz" one way and the proxy routing
// it another is a classic path confusion.
func validPathEscapes(t []byte) bool {
	if i := bytes.IndexByte(t, '?'); i >= 0 {
		t = t[:i]
	}
	for {
		i := bytes.IndexByte(t, '%')
		if i < 0 {
			return true
		}
		if i+2 >= len(t) || hexVal[t[i+1]] < 0 || hexVal[t[i+2]] < 0 {
			return false
		}
		t = t[i+3:]
	}
}

// validAuthority checks uri-host [":" port] (RFC 3986 §3.2.2) without
// userinfo, which RFC 9110 §4.2.4 deprecates for http, and without
// pct-encoding, which clients never need (IDNs travel as punycode) and which
// net/http decodes in a target's host but not in Host, so the two would
// compare unequal. IPvFuture and zone identifiers are refused.
func validAuthority(a []byte, needPort, allowEmpty bool) bool {
	if len(a) == 0 {
		return allowEmpty
	}
	var port []byte
	hasPort := false
	if a[0] == '[' {
		i := bytes.IndexByte(a, ']')
		if i < 0 {
			return false
		}
		if !validIPv6(a[1:i]) {
			return false
		}
		switch rest := a[i+1:]; {
		case len(rest) == 0:
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return false
		}
	} else {
		host := a
		if i := bytes.IndexByte(a, ':'); i >= 0 {
			host, port, hasPort = a[:i], a[i+1:], true
		}
		if len(host) == 0 {
			return false
		}
		for _, c := range host {
			if !isRegName[c] {
				return false
			}
		}
	}
	if !hasPort {
		return !needPort
	}
	if len(port) == 0 {
		return !needPort
	}
	if len(port) > 5 {
		return false
	}
	n := 0
	for _, c := range port {
		if c < '0' || c > '9' {
			return false
		}
		n = n*10 + int(c-'0')
	}
	return n <= 65535
}

// validIPv6 checks RFC 4291 §2.2 text form, as netip.ParseAddr does, but
// without building an address (ParseAddr would allocate the string).
func validIPv6(s []byte) bool {
	groups, ellipsis := 0, false
	if len(s) >= 2 && s[0] == ':' && s[1] == ':' {
		ellipsis, s = true, s[2:]
	}
	for len(s) > 0 {
		n := 0
		for n < len(s) && n < 5 && hexVal[s[n]] >= 0 {
			n++
		}
		if n < len(s) && s[n] == '.' {
			// An embedded IPv4 address ends the literal and counts as two
			// groups.
			if !validIPv4(s) {
				return false
			}
			groups += 2
			break
		}
		if n == 0 || n > 4 {
			return false
		}
		groups++
		s = s[n:]
		if len(s) == 0 {
			break
		}
		if s[0] != ':' || len(s) == 1 {
			return false
		}
		s = s[1:]
		if s[0] == ':' {
			if ellipsis {
				return false
			}
			ellipsis, s = true, s[1:]
		}
	}
	if ellipsis {
		return groups <= 7
	}
	return groups == 8
}

// validIPv4 checks a dotted quad of decimal octets without leading zeros.
func validIPv4(s []byte) bool {
	for octet := range 4 {
		if octet > 0 {
			if len(s) == 0 || s[0] != '.' {
				return false
			}
			s = s[1:]
		}
		n, v := 0, 0
		for n < len(s) && n < 4 && isDigit(s[n]) {
			v = v*10 + int(s[n]-'0')
			n++
		}
		if n == 0 || n > 3 || v > 255 || n > 1 && s[0] == '0' {
			return false
		}
		s = s[n:]
	}
	return len(s) == 0
}
