//! Pairs keyed by what they hold one of, instead of by position: the stack makes most pieces
//! once per function ([`ScannerReporter`]), and watches each function with two alarms
//! ([`FailureDuration`]).

/// Declares a pair type with one named field per variant of a two-variant key enum, and the
/// ways to build, read, transform and await it.
macro_rules! pair {
    ($(#[$doc:meta])* $pair:ident, $key:ty, $first:ident: $first_key:expr, $second:ident: $second_key:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub struct $pair<T> {
            #[doc = concat!("For ", stringify!($first_key), ".")]
            pub $first: T,
            #[doc = concat!("For ", stringify!($second_key), ".")]
            pub $second: T,
        }

        impl<T> $pair<T> {
            /// Both, each made from its key.
            pub fn new(mut make: impl FnMut($key) -> T) -> Self {
                $pair {
                    $first: make($first_key),
                    $second: make($second_key),
                }
            }

            /// The one for `key`.
            pub fn get(&self, key: $key) -> &T {
                if key == $first_key {
                    &self.$first
                } else {
                    &self.$second
                }
            }

            /// The one for `key`, to change.
            pub fn get_mut(&mut self, key: $key) -> &mut T {
                if key == $first_key {
                    &mut self.$first
                } else {
                    &mut self.$second
                }
            }

            /// Each, transformed with its key.
            pub fn map<U>(self, mut f: impl FnMut($key, T) -> U) -> $pair<U> {
                $pair {
                    $first: f($first_key, self.$first),
                    $second: f($second_key, self.$second),
                }
            }

            /// Borrows each.
            pub fn as_ref(&self) -> $pair<&T> {
                $pair {
                    $first: &self.$first,
                    $second: &self.$second,
                }
            }

            /// Each with its key, in declaration order.
            pub fn iter(&self) -> impl Iterator<Item = ($key, &T)> {
                [($first_key, &self.$first), ($second_key, &self.$second)].into_iter()
            }
        }

        impl<T, E> $pair<Result<T, E>> {
            /// Both values, or the first error (in declaration order).
            pub fn transpose(self) -> Result<$pair<T>, E> {
                Ok($pair {
                    $first: self.$first?,
                    $second: self.$second?,
                })
            }
        }

        impl<F: std::future::Future> $pair<F> {
            /// Awaits both concurrently.
            pub fn join(self) -> impl std::future::Future<Output = $pair<F::Output>> {
                // Not an `async fn`: that would hold both futures twice (as `self`, then joined).
                futures::FutureExt::map(
                    futures::future::join(self.$first, self.$second),
                    |($first, $second)| $pair { $first, $second },
                )
            }
        }
    };
}

/// Which function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// The scanner.
    Scanner,
    /// The reporter.
    Reporter,
}

/// What an alarm watches on its function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Any error: `Errors` above 0.
    Failure,
    /// A run that reaches the function's timeout: `Duration` at the timeout.
    Duration,
}

impl Kind {
    /// `failure` or `duration`, as the alarms' names spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Failure => "failure",
            Kind::Duration => "duration",
        }
    }
}

pair!(
    /// One of something per alarm on a function.
    FailureDuration,
    Kind,
    failure: Kind::Failure,
    duration: Kind::Duration
);

pair!(
    /// One of something per function: the stack makes a role, a log group, a function and a
    /// schedule for each.
    ScannerReporter,
    Function,
    scanner: Function::Scanner,
    reporter: Function::Reporter
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pair_is_read_by_its_key() {
        let mut p = ScannerReporter::new(|f| f == Function::Scanner);
        assert!(*p.get(Function::Scanner) && !p.reporter);
        *p.get_mut(Function::Reporter) = true;
        assert_eq!(p.map(|f, on| (f, on)).reporter, (Function::Reporter, true));
        let keys: Vec<Function> = p.iter().map(|(f, _)| f).collect();
        assert_eq!(keys, [Function::Scanner, Function::Reporter]);
        let r: ScannerReporter<Result<u8, &str>> = ScannerReporter {
            scanner: Err("first"),
            reporter: Err("second"),
        };
        assert_eq!(r.transpose(), Err("first"));
    }
}
