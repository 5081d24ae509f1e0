extension QRCode {
    /// The symbol as SVG for inline HTML: a white background and one path of dark modules, crisp at any zoom.
    /// - Parameters:
    ///   - moduleSize: pixels per module for the `width` and `height` attributes.
    ///   - quietZone: light modules around the symbol (4 by the standard).
    ///   - title: an accessible name, given as `<title>` and `aria-label`.
    /// - Returns: an `<svg>` element without an XML prolog.
    public func svg(moduleSize: Int = 4, quietZone: Int = 4, title: String? = nil) -> String {
        let total = size + 2 * quietZone
        var path = ""
        for y in 0..<size {
            var x = 0
            while x < size {
                guard self[x, y] else {
                    x += 1
                    continue
                }
                var run = 1
                while x + run < size && self[x + run, y] { run += 1 }
                path += "M\(x + quietZone),\(y + quietZone)h\(run)v1h-\(run)z"
                x += run
            }
        }
        let pixels = total * moduleSize
        var label = ""
        var titleElement = ""
        if let title {
            let escaped = Self.escapeXML(title)
            label = " role=\"img\" aria-label=\"\(escaped)\""
            titleElement = "<title>\(escaped)</title>"
        }
        return
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(total) \(total)\" width=\"\(pixels)\" height=\"\(pixels)\" shape-rendering=\"crispEdges\"\(label)>"
            + titleElement
            + "<rect width=\"\(total)\" height=\"\(total)\" fill=\"#fff\"/><path fill=\"#000\" d=\"\(path)\"/></svg>"
    }

    static func escapeXML(_ text: String) -> String {
        var escaped = ""
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
