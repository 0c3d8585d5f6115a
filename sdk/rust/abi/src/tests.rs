use super::*;
use crate::wire::{ABSENT, INPUT_SPAN, KEEP_TIMESTAMP, NO_TOPIC};

fn batch() -> Batch {
    let mut b = Batch::default();
    let parts = |key, value, offset| RecordParts {
        key,
        value,
        timestamp: 1_700_000_000_000,
        timestamp_type: TimestampType::CreateTime,
        topic: "in",
        partition: 2,
        offset,
    };
    b.push_parts(
        parts(Some(b"k1"), Some(b"v1"), 7),
        [("a", Some(&b"1"[..])), ("a", None)],
    )
    .unwrap();
    b.push_parts(parts(None, None, 8), []).unwrap();
    b
}

fn wire_of(b: &Batch) -> (Vec<u32>, Vec<i64>, Vec<u32>) {
    let (mut r, mut p, mut h) = (Vec::new(), Vec::new(), Vec::new());
    b.encode_index(&mut r, &mut p, &mut h);
    (r, p, h)
}

#[test]
fn batch_round_trips_every_field() {
    let b = batch();
    assert_eq!(b.topics(), ["in"]);
    let r = b.get(0).unwrap();
    assert_eq!(r.key(), Some(&b"k1"[..]));
    assert_eq!(r.value(), Some(&b"v1"[..]));
    let headers: Vec<_> = r.headers().iter().collect();
    assert_eq!(headers, [("a", Some(&b"1"[..])), ("a", None)]);
    assert_eq!((r.topic(), r.partition(), r.offset()), ("in", 2, 7));
    let t = b.get(1).unwrap();
    assert_eq!((t.key(), t.value(), t.headers().len()), (None, None, 0));
    assert!(b.get(2).is_none());
    assert_eq!(b.iter().map(|r| r.offset()).collect::<Vec<_>>(), [7, 8]);
}

#[test]
fn unchanged_bytes_are_referenced_not_copied() {
    let b = batch();
    let mut out = Outputs::new(&b);
    out.begin(0);
    let r = b.get(0).unwrap();
    out.emit(&r.to_output().value(Some(b"new")));
    let o = out.finish();
    assert_eq!(o.data_len(), 3, "only the new value is copied");
    let back: Vec<_> = o.records(&b).collect();
    assert_eq!(
        (back[0].key, back[0].value),
        (Some(&b"k1"[..]), Some(&b"new"[..]))
    );
    assert_eq!(back[0].headers.len(), 2);
    assert_eq!(back[0].input.offset(), 7);
    let (mut records, mut t, mut h) = (Vec::new(), Vec::new(), Vec::new());
    o.encode_index(&mut records, &mut t, &mut h);
    assert_ne!(records[1] & INPUT_SPAN, 0, "the key points into the input");
    assert_eq!(records[3] & INPUT_SPAN, 0, "the value is the output's own");
}

#[test]
fn a_failed_record_drops_only_its_own_outputs() {
    let b = batch();
    let mut out = Outputs::new(&b);
    out.begin(0);
    out.forward(&b.get(0).unwrap());
    out.begin(1);
    out.forward(&b.get(1).unwrap());
    out.emit(&Output::new().value(Some(b"x")));
    out.fail("bad".into());
    let o = out.finish();
    assert_eq!(o.len(), 1);
    assert_eq!(
        o.errors(),
        [RecordError {
            source: 1,
            message: "bad".into()
        }]
    );
    assert_eq!(o.data_len(), 0);
}

#[test]
fn the_wire_form_round_trips() {
    let b = batch();
    let (r, p, h) = wire_of(&b);
    assert_eq!((r.len(), p.len(), h.len()), (16, 6, 8));
    let back = Batch::from_wire(b.data().to_vec(), &r, &p, &h, b.topics().to_vec()).unwrap();
    assert_eq!(back, b);
    assert_eq!(
        Batch::from_wire(vec![], &r[..7], &p, &h, vec![]),
        Err(LayoutError::IndexLength)
    );

    let mut out = Outputs::new(&b);
    out.begin(0);
    out.emit(
        &b.get(0)
            .unwrap()
            .to_output()
            .value(Some(b"new"))
            .timestamp(7)
            .topic("t"),
    );
    out.begin(1);
    out.forward(&b.get(1).unwrap());
    let o = out.finish();
    let (mut r, mut t, mut h) = (Vec::new(), Vec::new(), Vec::new());
    o.encode_index(&mut r, &mut t, &mut h);
    let (data, topics, errors) = o.clone().into_parts();
    let back = OutputBatch::from_wire(data, &r, &t, &h, topics, errors, &b).unwrap();
    assert_eq!(back, o);
    let records: Vec<_> = back.records(&b).collect();
    assert_eq!(records[0].headers.len(), 2);
    assert_eq!(
        (records[0].timestamp, records[1].timestamp),
        (Some(7), None)
    );
    assert_eq!((records[0].topic, records[1].topic), (Some("t"), None));
}

#[test]
fn malformed_input_batches_are_refused_whole() {
    let b = batch();
    let (r, p, h) = wire_of(&b);
    let read = |r: &[u32], p: &[i64], h: &[u32], topics: &[&str]| {
        let topics = topics.iter().map(|t| t.to_string()).collect();
        Batch::from_wire(b.data().to_vec(), r, p, h, topics)
    };
    let mut bad = r.clone();
    bad[3] = 100; // value length past the data
    assert_eq!(
        read(&bad, &p, &h, &["in"]),
        Err(LayoutError::SpanOutOfBounds)
    );
    let mut bad = r.clone();
    bad[0] = u32::MAX - 1; // start + len overflows
    assert_eq!(
        read(&bad, &p, &h, &["in"]),
        Err(LayoutError::SpanOutOfBounds)
    );
    let mut bad = r.clone();
    bad[5] = 3; // three headers, two exist
    assert_eq!(
        read(&bad, &p, &h, &["in"]),
        Err(LayoutError::HeadersOutOfBounds)
    );
    assert_eq!(read(&r, &p, &h, &[]), Err(LayoutError::TopicOutOfBounds));
    let mut bad = p.clone();
    bad[1] = 5;
    assert_eq!(read(&r, &bad, &h, &["in"]), Err(LayoutError::TimestampType));
    assert_eq!(
        read(&r, &p[..3], &h, &["in"]),
        Err(LayoutError::IndexLength)
    );
    // A header span past the data, though no record names the header.
    let past = [0, 2, 0, ABSENT];
    assert_eq!(
        Batch::from_wire(b"a".to_vec(), &[], &[], &past, vec![]),
        Err(LayoutError::SpanOutOfBounds)
    );
    // A header name that is not UTF-8 reads as empty.
    let data = [b"k".as_slice(), &[0xff]].concat();
    let record = [0, 1, 0, ABSENT, 0, 1, 0, 0];
    let name_not_utf8 = [1, 1, 0, ABSENT];
    let b = Batch::from_wire(data, &record, &[0, 0, 0], &name_not_utf8, vec!["t".into()]).unwrap();
    let headers: Vec<_> = b.get(0).unwrap().headers().iter().collect();
    assert_eq!(headers, [("", None)]);
}

#[test]
fn malformed_outputs_are_refused() {
    let b = batch();
    let out = |records: &[u32], headers: &[u32], data: &[u8], topics: &[&str]| {
        let timestamps = vec![KEEP_TIMESTAMP; records.len() / wire::OUTPUT];
        let topics = topics.iter().map(|t| t.to_string()).collect();
        OutputBatch::from_wire(
            data.to_vec(),
            records,
            &timestamps,
            headers,
            topics,
            vec![],
            &b,
        )
    };
    let none = [0, ABSENT];
    let entry = |source, key: [u32; 2], headers: [u32; 2], topic| {
        [
            source, key[0], key[1], none[0], none[1], headers[0], headers[1], topic,
        ]
    };
    let own = |start, len| [start, len];
    let input = |start, len| [start | INPUT_SPAN, len];
    assert_eq!(
        out(&entry(0, own(0, 5), [0, 0], NO_TOPIC), &[], b"", &[]).unwrap_err(),
        LayoutError::SpanOutOfBounds
    );
    assert_eq!(
        out(&entry(0, input(0, 99), [0, 0], NO_TOPIC), &[], b"", &[]).unwrap_err(),
        LayoutError::SpanOutOfBounds
    );
    assert_eq!(
        out(&entry(9, none, [0, 0], NO_TOPIC), &[], b"", &[]).unwrap_err(),
        LayoutError::SourceOutOfOrder
    );
    let twice = [
        entry(1, none, [0, 0], NO_TOPIC),
        entry(0, none, [0, 0], NO_TOPIC),
    ]
    .concat();
    assert_eq!(
        out(&twice, &[], b"", &[]).unwrap_err(),
        LayoutError::SourceOutOfOrder
    );
    assert_eq!(
        out(&entry(0, none, [0, 0], 3), &[], b"", &[]).unwrap_err(),
        LayoutError::TopicOutOfBounds
    );
    assert_eq!(
        out(&entry(0, none, [0, 1], NO_TOPIC), &[], b"", &[]).unwrap_err(),
        LayoutError::HeadersOutOfBounds
    );
    let one_header = entry(0, none, [0, 1], NO_TOPIC);
    let header = |name: [u32; 2], value: [u32; 2]| [name, value].concat();
    assert_eq!(
        out(
            &one_header,
            &header(own(0, 1), own(1, 1)),
            &[0xff, b'v'],
            &[]
        )
        .unwrap_err(),
        LayoutError::HeaderNameNotUtf8
    );
    assert_eq!(
        out(
            &one_header,
            &header(own(1, 1), own(2, 1)),
            &[0xff, b'v'],
            &[]
        )
        .unwrap_err(),
        LayoutError::SpanOutOfBounds
    );
    // A name may point at any UTF-8 bytes of the input, here a value.
    let ok = out(
        &one_header,
        &header(input(2, 2), own(1, 1)),
        &[0xff, b'v'],
        &[],
    )
    .unwrap();
    let h: Vec<_> = ok.records(&b).next().unwrap().headers.iter().collect();
    assert_eq!(h, [("v1", Some(&b"v"[..]))]);
    let errors = vec![RecordError {
        source: 2,
        message: "x".into(),
    }];
    assert_eq!(
        OutputBatch::from_wire(vec![], &[], &[], &[], vec![], errors, &b),
        Err(LayoutError::SourceOutOfOrder)
    );
}

#[test]
#[should_panic(expected = "does not answer")]
fn outputs_are_read_only_against_the_batch_they_answer() {
    let b = batch();
    let o = Outputs::new(&b).finish();
    let _ = o.records(&Batch::default());
}

#[test]
#[should_panic(expected = "outputs begun for record 0 after record 1")]
fn outputs_follow_the_input_order() {
    let b = batch();
    let mut out = Outputs::new(&b);
    out.begin(1);
    out.begin(0);
}

#[test]
fn a_record_that_does_not_fit_leaves_the_batch_as_it_was() {
    let mut b = batch();
    let before = b.clone();
    let parts = RecordParts {
        key: Some(b"k"),
        value: None,
        timestamp: 0,
        timestamp_type: TimestampType::NotAvailable,
        topic: "other",
        partition: 0,
        offset: 9,
    };
    // A header value too long for the layout, after one that fits.
    let huge = vec![0u8; INPUT_SPAN as usize];
    let headers = [("ok", Some(&b"1"[..])), ("big", Some(huge.as_slice()))];
    assert_eq!(
        b.push_parts(parts, headers),
        Err(LayoutError::BatchTooLarge)
    );
    assert_eq!(b, before);
}

#[test]
fn the_crate_is_versioned_with_the_wit_package() {
    let version = WIT_PACKAGE.rsplit_once('@').unwrap().1;
    let minor = |v: &str| v.rsplit_once('.').unwrap().0.to_owned();
    assert_eq!(minor(env!("CARGO_PKG_VERSION")), minor(version));
}

#[test]
fn names_passed_on_skip_the_utf8_check_and_others_do_not() {
    let mut b = Batch::default();
    let parts = RecordParts {
        key: None,
        value: Some(&[0xff]),
        timestamp: 0,
        timestamp_type: TimestampType::NotAvailable,
        topic: "in",
        partition: 0,
        offset: 0,
    };
    b.push_parts(parts, [("n", Some(&b"v"[..]))]).unwrap();
    // data: 0xff (the value), "n", "v"
    let read = |name: [u32; 2]| {
        // source 0, no key, no value, header 0 only, the output topic
        let record = [0, 0, ABSENT, 0, ABSENT, 0, 1, NO_TOPIC];
        let header = [name[0], name[1], 2 | INPUT_SPAN, 1];
        OutputBatch::from_wire(
            vec![],
            &record,
            &[KEEP_TIMESTAMP],
            &header,
            vec![],
            vec![],
            &b,
        )
    };
    // The input's own header, passed on: accepted.
    let passed_on = read([1 | INPUT_SPAN, 1]).unwrap();
    let names: Vec<_> = passed_on
        .records(&b)
        .next()
        .unwrap()
        .headers
        .iter()
        .collect();
    assert_eq!(names, [("n", Some(&b"v"[..]))]);
    // A name pointing at the value's byte 0xff: refused.
    assert_eq!(read([INPUT_SPAN, 1]), Err(LayoutError::HeaderNameNotUtf8));
}
