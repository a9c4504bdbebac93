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
