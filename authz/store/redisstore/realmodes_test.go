package redisstore_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/silentauth/silentauth/authz/store"
	"github.com/silentauth/silentauth/authz/store/redisstore"
	"github.com/silentauth/silentauth/authz/store/storetest"
	"github.com/silentauth/silentauth/internal/testenv/redistest"
	"github.com/silentauth/silentauth/internal/testenv/testproc"
)

// The store over TLS to a redis-server that speaks nothing else.
func TestTLSConformance(t *testing.T) {
	srv := redistest.StartTLS(t)
	newStore := newStoresWith(redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}, TLS: srv.TLSConfig()})
	storetest.Run(t, newStore)
	storetest.RunSession(t, newStore)
}

// A server whose certificate does not chain to the configured roots is
// refused: the error says it is the certificate (an unknown authority) and
// does not show the password.
func TestTLSRefusesUnknownCA(t *testing.T) {
	const pw = "tls-s3cret-Pa55word"
	srv := redistest.StartTLS(t, "--requirepass", pw)
	o := redisstore.Options{Mode: redisstore.Standalone, Addrs: []string{srv.Addr()}, Password: pw, TLS: srv.TLSConfig()}
	if err := open(t, o).Ping(t.Context()); err != nil {
		t.Fatalf("Ping trusting the server's CA: %v", err)
	}

	o.TLS = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12} // trusts no CA
	err := open(t, o).Ping(t.Context())
	var unknown x509.UnknownAuthorityError
	switch {
	case err == nil:
		t.Fatal("Ping to a server of an unknown CA succeeded")
	case !errors.As(err, &unknown) || !strings.Contains(err.Error(), "certificate"):
		t.Fatalf("Ping to a server of an unknown CA: %v; want an x509.UnknownAuthorityError", err)
	case strings.Contains(err.Error(), pw):
		t.Fatal("the error of a refused certificate shows the password")
	case isSentinel(err):
		t.Fatalf("Ping: %v matches a store sentinel", err)
	}
	t.Logf("refused: %v", err)
}

// The store in Sentinel mode: Addrs name the sentinel alone, which names
// the master.
func TestSentinelConformance(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, "silentauth-master", master)
	newStore := newStoresWith(redisstore.Options{Mode: redisstore.Sentinel, Addrs: []string{sentinel.Addr()}, MasterName: sentinel.Name})
	storetest.Run(t, newStore)
	storetest.RunSession(t, newStore)
}

// Sentinels that monitor no master of MasterName (a typo, a sentinel that
// lost its configuration) answer its address with nil. Every call must fail
// as the fault it is, naming the sentinels, not read as a missing family:
// session would take every token for unknown and log everyone out.
func TestSentinelUnknownMasterIsAFault(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, "silentauth-master", master)
	st := open(t, redisstore.Options{Mode: redisstore.Sentinel, Addrs: []string{sentinel.Addr()}, MasterName: "no-such-master"})
	mustFailFast(t, st, family("fam-a", "alice", time.Now(), time.Hour), "unknown master name")
	if _, err := st.Get(t.Context(), "fam-a"); err == nil || !strings.Contains(err.Error(), "sentinel") {
		t.Fatalf("Get: %v; want an error naming the sentinels", err)
	}
}

// After a failover the same Store goes on: it follows the sentinel to the
// promoted replica, where the families written before are (replication
// carried them), and rotates one there.
func TestSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinel := redistest.StartSentinel(t, "silentauth-master", master)
	sentinel.WaitReplica(replica)
	ctx := t.Context()
	st := open(t, redisstore.Options{Mode: redisstore.Sentinel, Addrs: []string{sentinel.Addr()}, MasterName: sentinel.Name})

	now := time.Now().Truncate(time.Millisecond)
	var fams []*store.Family
	for i := range 5 {
		f := family(fmt.Sprint("fam-", i), "alice", now, time.Hour)
		if err := st.Create(ctx, f); err != nil {
			t.Fatalf("Create before the failover: %v", err)
		}
		fams = append(fams, f)
	}
	redistest.WaitReplicated(t, master, replica)

	began := time.Now()
	sentinel.Failover()
	sentinel.WaitMaster(replica)
	// The sentinel names the new master a moment before it announces the
	// switch (+switch-master), which is when go-redis drops its
	// connections to the former master. Until then the store still writes
	// there: wait until it has let go.
	formerMaster := master.Client(t)
	poll(t, "store lets go of the former master", func(ctx context.Context) error {
		clients, err := formerMaster.ClientList(ctx).Result()
		if err == nil && strings.Contains(clients, " name=silentauth ") {
			err = errors.New("still connected")
		}
		return err
	})
	t.Logf("failover and switch in %v", time.Since(began).Round(time.Millisecond))

	for _, f := range fams {
		got, err := st.Get(ctx, f.ID)
		if err != nil || got.Version != 1 || got.Subject != "alice" {
			t.Fatalf("Get(%s) after the failover = %+v, %v; want version 1 of alice", f.ID, got, err)
		}
	}
	next := fams[0].Clone()
	next.Version = 2
	next.Secrets = append([][]byte{[]byte("rotated-secret-hash-32-bytes-000")}, next.Secrets...)
	if err := st.Swap(ctx, 1, next); err != nil {
		t.Fatalf("Swap after the failover: %v", err)
	}
	if err := st.Create(ctx, family("fam-new", "alice", now, time.Hour)); err != nil {
		t.Fatalf("Create after the failover: %v", err)
	}
	if got, err := st.Subject(ctx, "alice"); err != nil || len(got) != len(fams)+1 {
		t.Fatalf("Subject after the failover = %d families, %v; want %d", len(got), err, len(fams)+1)
	}

	// The rotation landed on the new master: nothing replicates from the
	// former master any more, so a write there would not show here.
	head, err := replica.Client(t).GetRange(ctx, "silentauth:fam:{fam-0}", 1, 8).Result()
	if err != nil || len(head) != 8 || binary.BigEndian.Uint64([]byte(head)) != 2 {
		t.Fatalf("version on the new master %x, %v; want 2", head, err)
	}
}

// poll calls ready until it returns nil, and fails t if that takes more
// than 20 seconds.
func poll(t *testing.T, what string, ready func(context.Context) error) {
	t.Helper()
	if err := testproc.Poll(t.Context(), 20*time.Second, ready); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}
