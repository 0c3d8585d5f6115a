//! The runtime's cost per record: the identity plugin through the flat and
//! the typed world, next to the same plugin compiled natively, over the
//! host's own batch type.
//!
//! `cargo bench -p wasmpipe --bench runtime`
//!
//! - `call/*`: one `PluginInstance::transform` — lowering the batch into the
//!   guest, the SDK decoding it and encoding the outputs, lifting and
//!   validating them — against `native`, the SDK's `run_batch` over the same
//!   batch plus the same validation: the price of the sandbox alone.
//! - `chain/*`: `ChainInstance::run` and reading every output's key, value
//!   and headers, as the pipeline does when it produces them.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::path::Path;
use wasmpipe::record::{Batch, OutputBatch, RecordParts, TimestampType};
use wasmpipe::runtime::{Chain, Limits, Runtime, RuntimeOptions, read_plugin_file};
use wasmpipe_sdk::Transform;

fn batch(records: usize, value_bytes: usize, headers: usize) -> Batch {
    let mut b = Batch::default();
    let value = vec![b'v'; value_bytes];
    let header_values: Vec<Vec<u8>> = (0..headers)
        .map(|i| format!("header-value-{i}").into_bytes())
        .collect();
    for i in 0..records {
        let key = format!("key-{i:012}");
        let parts = RecordParts {
            key: Some(key.as_bytes()),
            value: Some(&value),
            timestamp: 1_700_000_000_000 + i as i64,
            timestamp_type: TimestampType::CreateTime,
            topic: "input",
            partition: 0,
            offset: i as i64,
        };
        let names = ["trace-id", "source", "content-type"];
        b.push_parts(
            parts,
            (0..headers).map(|h| (names[h % 3], Some(header_values[h].as_slice()))),
        )
        .unwrap();
    }
    b
}

fn bench(c: &mut Criterion) {
    let runtime = Runtime::new(RuntimeOptions::default()).unwrap();
    let load = |path: &str| {
        let source = read_plugin_file(Path::new(path)).unwrap();
        runtime.load(&source, vec![], Limits::default()).unwrap()
    };
    let flat = load(wasmpipe_test_guests::FLAT_IDENTITY);
    let typed = load(wasmpipe_test_guests::TYPED_IDENTITY);

    for value_bytes in [100, 1024] {
        for headers in [0, 3] {
            let mut group = c.benchmark_group(format!("identity/{value_bytes}B/{headers}h"));
            for size in [1, 64, 512] {
                let input = batch(size, value_bytes, headers);
                group.throughput(Throughput::Elements(size as u64));
                let mut native =
                    identity::Identity::init(&wasmpipe_sdk::Config::default()).unwrap();
                let (mut records, mut timestamps, mut headers) =
                    (Vec::new(), Vec::new(), Vec::new());
                group.bench_with_input(BenchmarkId::new("native", size), &input, |b, input| {
                    b.iter(|| {
                        // The outputs through the wire form and the host's
                        // checks, as the flat call's are.
                        let out = wasmpipe_sdk::run_batch(&mut native, black_box(input));
                        out.encode_index(&mut records, &mut timestamps, &mut headers);
                        let (data, topics, errors) = out.into_parts();
                        OutputBatch::from_wire(
                            data,
                            &records,
                            &timestamps,
                            &headers,
                            topics,
                            errors,
                            input,
                        )
                        .unwrap()
                    })
                });
                for (world, plugin) in [("flat", &flat), ("typed", &typed)] {
                    let mut instance = plugin.instantiate().unwrap();
                    group.bench_with_input(
                        BenchmarkId::new(format!("call/{world}"), size),
                        &input,
                        |b, input| b.iter(|| instance.transform(black_box(input)).unwrap()),
                    );
                    let mut chain = Chain {
                        plugins: vec![plugin.clone()],
                    }
                    .instantiate()
                    .unwrap();
                    group.bench_with_input(
                        BenchmarkId::new(format!("chain/{world}"), size),
                        &input,
                        |b, input| {
                            b.iter(|| {
                                let out = chain.run(black_box(input));
                                out.records()
                                    .map(|r| {
                                        r.value.map_or(0, <[u8]>::len)
                                            + r.headers.iter().map(|(n, _)| n.len()).sum::<usize>()
                                    })
                                    .sum::<usize>()
                            })
                        },
                    );
                }
            }
            group.finish();
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2))
        .sample_size(30);
    targets = bench
}
criterion_main!(benches);
