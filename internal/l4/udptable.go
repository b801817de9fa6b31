package l4

import "net/netip"

// udpTable holds one Serve loop's sessions: by client address and port,
// and in two recency orders, all sessions and each client address's, by
// their last datagram from the client. It is owned by the loop goroutine
// and not safe for concurrent use.
//
// When the table is full, a new client evicts the least recently active
// session, and a client address at its own limit evicts its own least
// recently active one, so a flood from many ports or addresses can churn
// the table but never lock a newcomer out (a refusal would, until the
// flood's sessions expired).
type udpTable struct {
	byClient map[netip.AddrPort]*udpSession
	all      sessionList
	perAddr  map[netip.Addr]*sessionList
}

// Indexes of udpSession.links.
const (
	linkAll = iota
	linkAddr
)

// sessionLink places a session in one sessionList.
type sessionLink struct{ prev, next *udpSession }

// sessionList is an intrusive doubly linked list of sessions, least
// recently active first; which says which of a session's links it uses.
type sessionList struct {
	first, last *udpSession
	n           int
	which       int
}

func (l *sessionList) pushBack(s *udpSession) {
	k := &s.links[l.which]
	k.prev, k.next = l.last, nil
	if l.last != nil {
		l.last.links[l.which].next = s
	} else {
		l.first = s
	}
	l.last = s
	l.n++
}

func (l *sessionList) remove(s *udpSession) {
	k := &s.links[l.which]
	if k.prev != nil {
		k.prev.links[l.which].next = k.next
	} else {
		l.first = k.next
	}
	if k.next != nil {
		k.next.links[l.which].prev = k.prev
	} else {
		l.last = k.prev
	}
	k.prev, k.next = nil, nil
	l.n--
}

func (l *sessionList) moveToBack(s *udpSession) {
	if l.last != s {
		l.remove(s)
		l.pushBack(s)
	}
}

func newUDPTable() udpTable {
	return udpTable{
		byClient: map[netip.AddrPort]*udpSession{},
		all:      sessionList{which: linkAll},
		perAddr:  map[netip.Addr]*sessionList{},
	}
}

func (t *udpTable) len() int { return t.all.n }

func (t *udpTable) get(client netip.AddrPort) *udpSession { return t.byClient[client] }

// add inserts a new session as the most recently active.
func (t *udpTable) add(s *udpSession) {
	t.byClient[s.client] = s
	t.all.pushBack(s)
	a := s.client.Addr().Unmap()
	l := t.perAddr[a]
	if l == nil {
		l = &sessionList{which: linkAddr}
		t.perAddr[a] = l
	}
	l.pushBack(s)
	s.addrList = l
}

func (t *udpTable) remove(s *udpSession) {
	if t.byClient[s.client] != s {
		return
	}
	delete(t.byClient, s.client)
	t.all.remove(s)
	s.addrList.remove(s)
	if s.addrList.n == 0 {
		delete(t.perAddr, s.client.Addr().Unmap())
	}
}

// used moves s to the back of both orders: the client just sent on it.
func (t *udpTable) used(s *udpSession) {
	t.all.moveToBack(s)
	s.addrList.moveToBack(s)
}

// addrSessions is the number of sessions of client address a.
func (t *udpTable) addrSessions(a netip.Addr) int {
	if l := t.perAddr[a]; l != nil {
		return l.n
	}
	return 0
}

// oldestOf is the least recently active session of client address a.
func (t *udpTable) oldestOf(a netip.Addr) *udpSession {
	if l := t.perAddr[a]; l != nil {
		return l.first
	}
	return nil
}

// secondChances bounds how many sessions victim passes over because
// their backend answered since the last sweep.
const secondChances = 8

// victim chooses the session a new client evicts from a full table: the
// one whose client sent least recently, unless its backend has sent to
// it since the session was last passed over (a stream that flows one way
// is not idle); such a session gets a second chance at the back of the
// order, up to secondChances times.
func (t *udpTable) victim() *udpSession {
	for range secondChances {
		s := t.all.first
		if s == nil || !s.replied.Swap(false) {
			return s
		}
		t.used(s)
	}
	return t.all.first
}
