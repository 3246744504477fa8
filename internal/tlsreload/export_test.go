package tlsreload

// NewWithClock is New with a clock the tests drive instead of sleeping.
var NewWithClock = newReloader
