package lock_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/entitylock/entitylock/lock"
)

func Example() {
	ctx := context.Background()
	m, err := lock.Open(ctx, ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()

	alice, _ := m.Session("agent-alice")
	bob, _ := m.Session("agent-bob")

	lease, err := alice.Acquire(ctx, "entity::Foo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("alice holds", lease.Entity, "with token", lease.Token)

	_, err = bob.TryAcquire(ctx, "entity::Foo")
	var held *lock.HeldError
	if errors.As(err, &held) {
		fmt.Println("bob is told it is held by", held.Holder.SessionID)
	}

	if _, err := alice.Release(ctx, "entity::Foo"); err != nil {
		log.Fatal(err)
	}
	lease, err = bob.TryAcquire(ctx, "entity::Foo")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("bob holds", lease.Entity, "with token", lease.Token)
	// Output:
	// alice holds entity::Foo with token 1
	// bob is told it is held by agent-alice
	// bob holds entity::Foo with token 2
}

// A lease lapses after its TTL unless extended; an expired lease is never
// revived and goes to the next session that asks.
func ExampleSession_Extend() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	m, err := lock.Open(ctx, ":memory:", lock.WithClock(clock), lock.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, _ := m.Session("worker-1")

	l, _ := s.Acquire(ctx, "job::42")
	fmt.Println("expires", l.ExpiresAt.Format(time.TimeOnly))
	l, _ = s.Extend(ctx, "job::42", 30*time.Second)
	fmt.Println("extended to", l.ExpiresAt.Format(time.TimeOnly))

	now = now.Add(2 * time.Minute)
	_, err = s.Extend(ctx, "job::42", time.Minute)
	fmt.Println("after expiry:", errors.Is(err, lock.ErrNotHeld))
	// Output:
	// expires 12:01:00
	// extended to 12:01:30
	// after expiry: true
}

// Fencing tokens grow with every new grant, whoever ends the previous one.
func ExampleManager_ForceRelease() {
	ctx := context.Background()
	m, err := lock.Open(ctx, ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	stuck, _ := m.Session("stuck-agent")
	next, _ := m.Session("next-agent")

	old, _ := stuck.Acquire(ctx, "cache::user:7")
	released, _ := m.ForceRelease(ctx, "cache::user:7")
	fresh, _ := next.Acquire(ctx, "cache::user:7")
	fmt.Println(released, fresh.Token > old.Token)
	// Output: true true
}

// Do holds the entity while the function runs, renewing the lease in the
// background, and releases it afterwards.
func ExampleSession_Do() {
	ctx := context.Background()
	m, err := lock.Open(ctx, ":memory:")
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	s, _ := m.Session("agent-7")

	err = s.Do(ctx, "memory::user-42", func(ctx context.Context, l lock.Lease) error {
		holder, _ := m.Holder(ctx, l.Entity)
		fmt.Println("inside: held by", holder.SessionID)
		return nil // ctx is cancelled if the lease is lost meanwhile
	})
	_, err2 := m.Holder(ctx, "memory::user-42")
	fmt.Println("after:", err, errors.Is(err2, lock.ErrNotHeld))
	// Output:
	// inside: held by agent-7
	// after: <nil> true
}

// Guard checks the lease inside the transaction that writes, so a holder
// whose lease was taken over cannot commit a late write.
func ExampleManager_Guard() {
	ctx := context.Background()
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	m, err := lock.Open(ctx, ":memory:", lock.WithClock(func() time.Time { return now }), lock.WithTTL(time.Minute))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	db := m.DB()
	if _, err := db.ExecContext(ctx, `CREATE TABLE notes (entity TEXT PRIMARY KEY, body TEXT)`); err != nil {
		log.Fatal(err)
	}
	write := func(l lock.Lease, body string) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if err := m.Guard(ctx, tx, l); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT OR REPLACE INTO notes VALUES (?, ?)`, l.Entity, body); err != nil {
			return err
		}
		return tx.Commit()
	}

	slow, _ := m.Session("slow-agent")
	fast, _ := m.Session("fast-agent")
	stale, _ := slow.Acquire(ctx, "note::1")
	now = now.Add(2 * time.Minute) // the slow agent stalls past its TTL
	fresh, _ := fast.Acquire(ctx, "note::1")

	fmt.Println("fast:", write(fresh, "from fast"))
	fmt.Println("slow:", errors.Is(write(stale, "late"), lock.ErrNotHeld))
	var body string
	db.QueryRowContext(ctx, `SELECT body FROM notes`).Scan(&body)
	fmt.Println("stored:", body)
	// Output:
	// fast: <nil>
	// slow: true
	// stored: from fast
}

// AcquireAll takes several entities at once, or none of them.
func ExampleSession_AcquireAll() {
	ctx := context.Background()
	m, err := lock.Open(ctx, ":memory:", lock.WithRetry(lock.RetryPolicy{})) // one attempt
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	merger, _ := m.Session("merger")
	other, _ := m.Session("other")

	other.Acquire(ctx, "entity::B")
	_, err = merger.AcquireAll(ctx, "entity::A", "entity::B")
	var held *lock.HeldError
	if errors.As(err, &held) {
		fmt.Println("blocked by", held.Holder.Entity)
	}
	mine, _ := merger.Locks(ctx)
	fmt.Println("held after refusal:", len(mine))

	other.Release(ctx, "entity::B")
	leases, _ := merger.AcquireAll(ctx, "entity::B", "entity::A")
	fmt.Println("granted:", leases[0].Entity, leases[1].Entity)
	// Output:
	// blocked by entity::B
	// held after refusal: 0
	// granted: entity::A entity::B
}
