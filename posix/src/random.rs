//! Random bytes from the kernel.

use crate::{Errno, Result};

/// Fills `buf` with bytes from `getrandom(2)`: the kernel's CSPRNG, no file
/// descriptor needed, blocking only until the pool is first seeded at
/// boot. Retries on `EINTR` and on short reads.
pub fn getrandom(buf: &mut [u8]) -> Result<()> {
    let mut done = 0;
    while done < buf.len() {
        let rest = &mut buf[done..];
        // SAFETY: the kernel writes at most `rest.len()` bytes into `rest`.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        match usize::try_from(n) {
            Ok(n) => done += n,
            Err(_) => match Errno::last() {
                Errno::EINTR => continue,
                e => return Err(e),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn two_fills_of_32_bytes_differ_and_are_not_all_zero() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        getrandom(&mut a).unwrap();
        getrandom(&mut b).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn a_large_buffer_is_filled_to_the_end() {
        let mut buf = vec![0u8; 1 << 20];
        getrandom(&mut buf).unwrap();
        assert!(buf[buf.len() - 64..].iter().any(|&b| b != 0));
    }
}
