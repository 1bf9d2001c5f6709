//! Random bytes and random mutations of a valid file never make the parser or the
//! checks panic, and every diagnostic points inside the file.

use std::sync::Arc;

const VALID: &str = "\
a1.sources = r1 r2
a1.channels = c1 c2
a1.sinks = k1 k2
a1.sinkgroups = g1
a1.sources.r1.type = exec
a1.sources.r1.command = tail -F /var/log/app.log
a1.sources.r1.channels = c1 c2
a1.sources.r1.selector.type = multiplexing
a1.sources.r1.selector.header = level
a1.sources.r1.selector.mapping.ERROR = c1
a1.sources.r1.selector.default = c2
a1.sources.r1.interceptors = i1 i2
a1.sources.r1.interceptors.i1.type = timestamp
a1.sources.r1.interceptors.i2.type = regex_extractor
a1.sources.r1.interceptors.i2.regex = ^(\\\\w+)
a1.sources.r2.type = netcat
a1.sources.r2.bind = 127.0.0.1
a1.sources.r2.port = 4444\\
  5
a1.sources.r2.channels = c1
a1.channels.c1.type = memory
a1.channels.c2.type = memory
a1.sinks.k1.type = logger
a1.sinks.k1.channel = c1
a1.sinks.k2.type = null
a1.sinks.k2.channel = c2
a1.sinkgroups.g1.sinks = k1 k2
a1.sinkgroups.g1.processor.type = failover
# comment \\u00e9 \\
! another
";

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn run(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let lines = text.split('\n').count();
    for agent in ["a1", "", "a1.sources", "x"] {
        let (cfg, diags) = millrace_config::from_text(Arc::from("fuzz.conf"), &text, agent);
        for d in &diags {
            assert!(
                d.line <= lines,
                "line {} beyond {lines}: {d}\n---\n{text}",
                d.line
            );
        }
        if let Some(cfg) = cfg {
            for s in &cfg.sources {
                let _ = s.component.props.finish();
            }
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let alphabet = b"a1.sources channels sinks type = : \\ \n\r\t#!u0041 r1 c1 k1 .. ==";
    for _ in 0..4_000 {
        let len = rng.below(200);
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                if rng.below(4) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                }
            })
            .collect();
        run(&bytes);
    }
}

#[test]
fn mutations_of_a_valid_file_never_panic() {
    let mut rng = XorShift(42);
    let base = VALID.as_bytes();
    let specials = b"=:\\\n. #!\ru";
    for _ in 0..4_000 {
        let mut b = base.to_vec();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(b.len());
            match rng.below(4) {
                0 => {
                    b.remove(at);
                }
                1 => b.insert(at, specials[rng.below(specials.len())]),
                2 => b[at] = rng.next() as u8,
                _ => {
                    let end = (at + rng.below(40)).min(b.len());
                    let chunk = b[at..end].to_vec();
                    let to = rng.below(b.len());
                    b.splice(to..to, chunk);
                }
            }
        }
        run(&b);
    }
}
