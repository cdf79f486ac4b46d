package model

// ring keeps the last max values pushed, oldest first. Pushing into a
// full ring overwrites the oldest value: no copying, so a capped
// transcript costs the same per line however long the session runs.
type ring[T any] struct {
	buf  []T
	head int // index of the oldest value once full
	max  int
}

// push appends v and reports whether the oldest value was let go.
func (r *ring[T]) push(v T) (dropped bool) {
	if len(r.buf) < r.max {
		r.buf = append(r.buf, v)
		return false
	}
	r.buf[r.head] = v
	r.head++
	if r.head == r.max {
		r.head = 0
	}
	return true
}

func (r *ring[T]) len() int { return len(r.buf) }

// at returns the i-th value, 0 being the oldest kept.
func (r *ring[T]) at(i int) T {
	if len(r.buf) < r.max {
		return r.buf[i]
	}
	i += r.head
	if i >= r.max {
		i -= r.max
	}
	return r.buf[i]
}

// slice copies the values out, oldest first.
func (r *ring[T]) slice() []T {
	out := make([]T, 0, len(r.buf))
	if len(r.buf) < r.max {
		return append(out, r.buf...)
	}
	out = append(out, r.buf[r.head:]...)
	return append(out, r.buf[:r.head]...)
}
