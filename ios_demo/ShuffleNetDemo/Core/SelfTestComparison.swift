import Foundation

/// What selftest.json allows (docs/app-protocol.md): `sdeploy verify`'s tolerance for this artifact.
struct Tolerance: Codable, Sendable, Equatable {
    let atol: Double
    let minCosine: Double
    let decisiveMargin: Double

    enum CodingKeys: String, CodingKey {
        case atol
        case minCosine = "min_cosine"
        case decisiveMargin = "decisive_margin"
    }
}

/// The comparison every app implements (docs/app-protocol.md, "The comparison every app implements"), in
/// Double, as Python's `shufflenet_deploy.apps.selftest.compare` computes it. `SelfTestComparisonTests` checks
/// every metric within 1e-12 and the verdict against golden.json "selftest_compare".
struct SelfTestMetrics: Sendable, Equatable {
    /// "PASS" or "FAIL".
    let verdict: String
    let maxAbsError: Double
    let maxRelError: Double
    let minCosine: Double
    let top1Agreement: Double
    let decisiveTop1Agreement: Double

    var passed: Bool { verdict == "PASS" }

    /// `outputs[i]` is the app's output for image i, `expected[i]` Python's (images x classes).
    static func compare(outputs: [[Double]], expected: [[Double]], tolerance: Tolerance) throws -> SelfTestMetrics {
        guard !expected.isEmpty, outputs.count == expected.count,
              zip(outputs, expected).allSatisfy({ pair in pair.0.count == pair.1.count && !pair.1.isEmpty }) else {
            throw DemoError.badOutput("the outputs (\(outputs.map(\.count))) and the expected values "
                + "(\(expected.map(\.count))) must be equal, non-empty images x classes arrays")
        }
        if !outputs.allSatisfy({ $0.allSatisfy(\.isFinite) }) {
            // As Python does: outputs with NaN or Inf fail, whatever the tolerance.
            return SelfTestMetrics(verdict: "FAIL", maxAbsError: .infinity, maxRelError: .infinity, minCosine: -1,
                                   top1Agreement: 0, decisiveTop1Agreement: 0)
        }
        var maxAbs = 0.0
        var minCosine = Double.infinity
        var agreeing = 0
        var decisive = 0
        var decisiveAgreeing = 0
        for (actual, reference) in zip(outputs, expected) {
            for (a, e) in zip(actual, reference) {
                maxAbs = max(maxAbs, abs(a - e))
            }
            let dot = zip(actual, reference).reduce(0.0) { $0 + $1.0 * $1.1 }
            minCosine = min(minCosine, dot / (norm(actual) * norm(reference) + 1e-30))
            let agrees = argmax(actual) == argmax(reference)
            agreeing += agrees ? 1 : 0
            if topTwoGap(reference) > tolerance.decisiveMargin {
                decisive += 1
                decisiveAgreeing += agrees ? 1 : 0
            }
        }
        let low = expected.map { $0.min() ?? 0 }.min() ?? 0
        let high = expected.map { $0.max() ?? 0 }.max() ?? 0
        let spread = high - low == 0 ? 1.0 : high - low
        let decisiveAgreement = decisive == 0 ? 1.0 : Double(decisiveAgreeing) / Double(decisive)
        let passed = maxAbs <= tolerance.atol && minCosine >= tolerance.minCosine && decisiveAgreement == 1.0
        return SelfTestMetrics(
            verdict: passed ? "PASS" : "FAIL",
            maxAbsError: maxAbs,
            maxRelError: maxAbs / spread,
            minCosine: minCosine,
            top1Agreement: Double(agreeing) / Double(expected.count),
            decisiveTop1Agreement: decisiveAgreement)
    }

    /// Index of the largest value; the first one wins ties (NumPy's argmax).
    static func argmax(_ values: [Double]) -> Int {
        var best = 0
        for index in values.indices where values[index] > values[best] {
            best = index
        }
        return best
    }

    /// Largest minus second-largest value (0 when the largest appears twice); infinite for one class.
    static func topTwoGap(_ values: [Double]) -> Double {
        guard values.count >= 2 else { return .infinity }
        let sorted = values.sorted()
        return sorted[sorted.count - 1] - sorted[sorted.count - 2]
    }

    private static func norm(_ values: [Double]) -> Double {
        values.reduce(0.0) { $0 + $1 * $1 }.squareRoot()
    }
}
