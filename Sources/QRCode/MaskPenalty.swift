/// The four penalty rules used to choose a mask (ISO/IEC 18004 §7.8.3).
enum MaskPenalty {
    static func score(_ modules: [[Bool]]) -> Int {
        let size = modules.count
        let columns = (0..<size).map { x in (0..<size).map { y in modules[y][x] } }
        var total = 0
        for line in modules + columns {
            total += runs(line) + finderLike(line)
        }
        for y in 0..<(size - 1) {
            for x in 0..<(size - 1) {
                let color = modules[y][x]
                if modules[y][x + 1] == color && modules[y + 1][x] == color && modules[y + 1][x + 1] == color { total += 3 }
            }
        }
        let dark = modules.reduce(0) { $0 + $1.filter { $0 }.count }
        let percent = dark * 100 / (size * size)
        total += abs(percent - 50) / 5 * 10
        return total
    }

    /// Rule 1: five or more modules of one colour in a row score 3, plus 1 for each beyond five.
    static func runs(_ line: [Bool]) -> Int {
        var score = 0
        var length = 1
        for index in 1...line.count {
            if index < line.count && line[index] == line[index - 1] {
                length += 1
            } else {
                if length >= 5 { score += length - 2 }
                length = 1
            }
        }
        return score
    }

    static let patternA: [Bool] = [true, false, true, true, true, false, true, false, false, false, false]
    static let patternB: [Bool] = [false, false, false, false, true, false, true, true, true, false, true]

    /// Rule 3: 1:1:3:1:1 finder-like patterns with four light modules on one side score 40 each.
    static func finderLike(_ line: [Bool]) -> Int {
        guard line.count >= patternA.count else { return 0 }
        var score = 0
        for start in 0...(line.count - patternA.count) {
            let window = line[start..<(start + patternA.count)]
            if window.elementsEqual(patternA) { score += 40 }
            if window.elementsEqual(patternB) { score += 40 }
        }
        return score
    }
}
