import Foundation

/// One line of the result list.
struct Prediction: Identifiable, Sendable, Equatable {
    let index: Int
    let label: String
    let probability: Double
    var id: Int { index }
}

/// Softmax and top-k over the model's raw outputs, in Double, as Python's `predict.softmax` and `predict.top_k`
/// compute them (`ScoresTests` checks both against golden.json "topk").
enum Scores {
    /// exp(x - max) / sum: never overflows.
    static func softmax(_ logits: [Double]) -> [Double] {
        guard let largest = logits.max() else { return [] }
        let exps = logits.map { exp($0 - largest) }
        let total = exps.reduce(0, +)
        return exps.map { $0 / total }
    }

    /// Indices of the `k` largest scores, best first; equal scores keep the lower index first
    /// (Python's stable argsort of -scores).
    static func topIndices(_ scores: [Double], k: Int) -> [Int] {
        let order = scores.indices.sorted { a, b in
            scores[a] != scores[b] ? scores[a] > scores[b] : a < b
        }
        return Array(order.prefix(max(k, 0)))
    }

    /// The best `k` classes with their probabilities. `areLogits` applies softmax (model.json `output.kind`).
    static func top(_ scores: [Double], labels: [String], k: Int, areLogits: Bool) -> [Prediction] {
        let probabilities = areLogits ? softmax(scores) : scores
        return topIndices(scores, k: k).map { index in
            Prediction(index: index, label: index < labels.count ? labels[index] : "class \(index)",
                       probability: probabilities[index])
        }
    }
}
