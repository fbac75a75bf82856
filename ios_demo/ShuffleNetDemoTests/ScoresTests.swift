import XCTest

final class ScoresTests: XCTestCase {
    /// golden.json "topk": softmax and top-k of Python's `predict`, ties included.
    func testSoftmaxAndTopKMatchPython() throws {
        let golden = try TestResources.golden()
        XCTAssertFalse(golden.topk.isEmpty)
        for (number, topk) in golden.topk.enumerated() {
            let logits = try Base64.float64LE(topk.logitsF64leB64)
            let softmax = try Base64.float64LE(topk.softmaxF64leB64)
            let ours = Scores.softmax(logits)
            XCTAssertEqual(ours.count, softmax.count)
            for (a, e) in zip(ours, softmax) {
                assertClose(a, e, "softmax, case \(number)")
            }
            let labels = logits.indices.map { "class_\($0)" }
            let top = Scores.top(logits, labels: labels, k: topk.k, areLogits: true)
            XCTAssertEqual(top.map(\.index), topk.indices, "top-k order, case \(number)")
            XCTAssertEqual(top.map(\.label), topk.indices.map { "class_\($0)" })
            for (prediction, probability) in zip(top, topk.probabilities) {
                assertClose(prediction.probability, probability, "top-k probability, case \(number)")
            }
        }
    }

    func testProbabilitiesAreNotSoftmaxedAgain() {
        let top = Scores.top([0.1, 0.7, 0.2], labels: ["a", "b", "c"], k: 2, areLogits: false)
        XCTAssertEqual(top.map(\.index), [1, 2])
        XCTAssertEqual(top.map(\.probability), [0.7, 0.2])
    }
}
