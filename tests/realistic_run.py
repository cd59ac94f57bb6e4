"""Two born-digital reports with tables, and the replies a 7B-70B instruction model writes about
them, each pair labelled with what the shipped default chain must do with it.

The replies come in four formats real models use (Qwen-style bold `**Q1:**` markers with
citations, fenced JSON with a trailing comma inside prose, a numbered markdown list with
`**Question:**`, Leopard lines with `R1:`/`E1:` and a reply cut off at max_tokens). Correct answers
include derived numbers (differences, sums of a table row or column, averages, percentages and
percentage changes); wrong ones change the correct value by 10% or more, or write out arithmetic
that does not hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pymupdf

CSS = """
body { font-family: Helvetica; font-size: 10.5pt; }
h1 { font-size: 18pt; margin: 0 0 8pt 0; }
h2 { font-size: 13pt; margin: 10pt 0 6pt 0; }
p { margin: 0 0 6pt 0; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 0 0 8pt 0; }
th, td { border: 0.5pt solid #888888; padding: 2pt 4pt; }
"""


def table(caption: str, header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<p><b>{caption}</b></p><table><tr>{head}</tr>{body}</table>"


BREAK = '<h2 style="page-break-before: always">'

FERRIES = (
    "<h1>Northwind Ferries 2025 Operations Report</h1>"
    "<p>Northwind Ferries runs three routes across Kestrel Bay: the Harbor Line, the Island Loop "
    "and the Bay Express. Passenger numbers peaked in the third quarter, when summer timetables "
    "added evening sailings on every route.</p>"
    + table(
        "Table 1. Passengers by route and quarter (thousands)",
        ["Route", "Q1", "Q2", "Q3", "Q4"],
        [
            ["Harbor Line", "412", "538", "701", "466"],
            ["Island Loop", "188", "254", "367", "201"],
            ["Bay Express", "95", "120", "162", "104"],
        ],
    )
    + "<p>The Island Loop was closed for nine days in February for pier repairs at Gull Point.</p>"
    + f"{BREAK}Fleet and fuel</h2>"
    "<p>The fleet has three vessels. Cygnus, the largest, serves the Harbor Line; Aurora and "
    "Borealis share the Island Loop and the Bay Express. Fuel is bought under a fixed-price "
    "contract with Kestrel Marine Supply.</p>"
    + table(
        "Table 2. Fuel use, fuel cost and crossings by vessel, 2025",
        ["Vessel", "Fuel (tonnes)", "Fuel cost ($ thousands)", "Crossings"],
        [
            ["Aurora", "1,240", "1,054", "3,100"],
            ["Borealis", "980", "833", "2,450"],
            ["Cygnus", "1,515", "1,288", "3,790"],
        ],
    )
    + "<p>Cygnus was in dry dock for eleven days in November for hull cleaning.</p>"
    + f"{BREAK}Staff</h2>"
    "<p>Headcount is counted on 31 December. Terminal staff fell after self-service ticket "
    "machines were installed at Gull Point and Harbor Quay.</p>"
    + table(
        "Table 3. Staff by department",
        ["Department", "2024", "2025"],
        [
            ["Deck crew", "146", "158"],
            ["Engineering", "64", "71"],
            ["Terminal staff", "212", "198"],
            ["Office", "38", "40"],
        ],
    )
    + f"{BREAK}Finance and safety</h2>"
    "<p>Revenue grew from $48.2 million in 2024 to $53.6 million in 2025, helped by a fare "
    "increase of 4 percent in April. Operating costs were $41.0 million in 2025, against $38.5 "
    "million in 2024. Northwind recorded 3 safety incidents in 2025, down from 5 in 2024; none "
    "caused injuries.</p>"
)

LIBRARY = (
    "<h1>Kestrel Bay Library Service: 2025 Statistics</h1>"
    "<p>The library service has three branches: Central, Northgate and Quayside. Loans are "
    "counted when an item is issued, including renewals made online.</p>"
    + table(
        "Table 1. Loans by branch and format, 2025 (thousands)",
        ["Branch", "Books", "E-books", "Audiobooks"],
        [
            ["Central", "214", "96", "41"],
            ["Northgate", "87", "35", "12"],
            ["Quayside", "63", "28", "9"],
        ],
    )
    + f"{BREAK}Visits and events</h2>"
    "<p>Central had 312,400 visits in 2025 and 296,800 in 2024. Opening hours at Quayside were "
    "cut from 48 to 40 hours a week in March to fund longer Saturday opening at Central. The "
    "service ran 1,240 events, of which 415 were for children.</p>"
    + f"{BREAK}Budget</h2>"
    + table(
        "Table 3. Library budget by item ($ thousands)",
        ["Item", "2024", "2025"],
        [
            ["Staff", "3,420", "3,515"],
            ["Stock", "610", "585"],
            ["Buildings", "940", "1,020"],
            ["Digital services", "180", "240"],
        ],
    )
    + "<p>Spending on buildings rose because the Northgate roof was replaced.</p>"
    + f"{BREAK}Members</h2>"
    "<p>Active members rose to 41,300 from 38,900. The new mobile app, launched in June, had "
    "9,850 users by December.</p>"
)


def write_pdf(path: Path, html: str) -> Path:
    """Lay the HTML out on Letter pages with PyMuPDF's Story (a real text layer and tables)."""
    story = pymupdf.Story(html, user_css=CSS)
    writer = pymupdf.DocumentWriter(str(path))
    rect = pymupdf.paper_rect("letter")
    more = True
    while more:
        device = writer.begin_page(rect)
        more, _ = story.place(pymupdf.Rect(54, 54, rect.width - 54, rect.height - 54))
        story.draw(device)
        writer.end_page()
    writer.close()
    return path


@dataclass(frozen=True)
class Expected:
    """A pair as a careful reader extracts it, and whether the default chain must keep it."""

    question: str
    keep: bool
    why: str  # derived number, on page, wrong number, ...


FERRIES_UNIT_1 = """Here are 11 question-answer pairs based on the document:

**Q1:** Which three routes does Northwind Ferries run across Kestrel Bay?
**A1:** The Harbor Line, the Island Loop and the Bay Express [1].

**Q2:** How many more passengers did the Harbor Line carry in Q3 than in Q1?
**A2:** The Harbor Line carried 289 thousand more passengers in Q3 (701 thousand) than in Q1 (412 thousand) [page 1].

**Q3:** What was the total number of Harbor Line passengers over the four quarters?
**A3:** 2,117 thousand passengers (412 + 538 + 701 + 466).

**Q4:** By what percentage did Island Loop passengers grow from Q1 to Q2?
**A4:** They grew by about 35%, from 188 thousand to 254 thousand.

**Q5:** Which vessel used the most fuel in 2025?
**A5:** Cygnus, with 1,515 tonnes of fuel [2].

**Q6:** How much fuel did the three vessels use together in 2025?
**A6:** 3,735 tonnes of fuel.

**Q7:** Why was the Island Loop closed in February?
**A7:** It was closed for nine days for pier repairs at Gull Point.

**Q8:** What was the average number of Island Loop passengers per quarter?
**A8:** About 252.5 thousand passengers per quarter.

**Q9:** How many crossings did Aurora and Borealis make together in 2025?
**A9:** Aurora and Borealis made 6,250 crossings together.

**Q10:** How many more passengers did the Island Loop carry in Q3 than in Q4?
**A10:** The Island Loop carried 196 thousand more passengers in Q3 than in Q4.

**Q11:** By what percentage did Harbor Line passengers fall from Q3 to Q4?
**A11:** Harbor Line passengers fell by about 22% from Q3 to Q4.

Let me know if you would like more questions about the fleet!"""

FERRIES_UNIT_1_EXPECTED = [
    Expected("Which three routes does Northwind Ferries run across Kestrel Bay?", True, "citation"),
    Expected(
        "How many more passengers did the Harbor Line carry in Q3 than in Q1?", True, "difference"
    ),
    Expected(
        "What was the total number of Harbor Line passengers over the four quarters?",
        True,
        "row sum",
    ),
    Expected(
        "By what percentage did Island Loop passengers grow from Q1 to Q2?", True, "percent change"
    ),
    Expected("Which vessel used the most fuel in 2025?", True, "on page, citation"),
    Expected("How much fuel did the three vessels use together in 2025?", True, "column sum"),
    Expected("Why was the Island Loop closed in February?", True, "spelled-out number"),
    Expected(
        "What was the average number of Island Loop passengers per quarter?", True, "row average"
    ),
    Expected(
        "How many crossings did Aurora and Borealis make together in 2025?", False, "wrong sum"
    ),
    Expected(
        "How many more passengers did the Island Loop carry in Q3 than in Q4?",
        False,
        "wrong difference",
    ),
    Expected(
        "By what percentage did Harbor Line passengers fall from Q3 to Q4?", False, "wrong percent"
    ),
]

FERRIES_UNIT_2 = """Sure! Based on pages 3 and 4, here are the pairs in JSON:

```json
[
  {"question": "How many deck crew did Northwind Ferries employ at the end of 2025?", "answer": "158 deck crew.", "evidence_pages": [3]},
  {"question": "By how much did the number of terminal staff fall from 2024 to 2025?", "answer": "Terminal staff fell by 14, from 212 to 198, after self-service ticket machines were installed.", "evidence_pages": [3]},
  {"question": "What was the total headcount at the end of 2025?", "answer": "467 staff across the four departments.", "evidence_pages": [3]},
  {"question": "How much did revenue grow from 2024 to 2025?", "answer": "Revenue grew by $5.4 million, from $48.2 million to $53.6 million.", "evidence_pages": [4]},
  {"question": "By what percentage did Northwind's revenue grow in 2025?", "answer": "Revenue grew by about 11.2%.", "evidence_pages": [4]},
  {"question": "How many safety incidents did Northwind record in 2025, and how does that compare with 2024?", "answer": "3 incidents in 2025, down from 5 in 2024; none caused injuries.", "evidence_pages": [4]},
  {"question": "What was the difference between revenue and operating costs in 2025?", "answer": "Revenue exceeded operating costs by $12.6 million.", "evidence_pages": [4]},
  {"question": "When did the fare increase take effect, and how large was it?", "answer": "In April; fares rose by 4 percent.", "evidence_pages": [4]},
  {"question": "By what percentage did engineering staff grow from 2024 to 2025?", "answer": "Engineering staff grew by about 11%, from 64 to 71.", "evidence_pages": [3]},
  {"question": "By how much did operating costs rise from 2024 to 2025?", "answer": "Operating costs rose by $3.5 million.", "evidence_pages": [4]},
  {"question": "What was the total headcount at the end of 2024?", "answer": "510 staff in total.", "evidence_pages": [3]},
  {"question": "What was the average revenue per quarter in 2025?", "answer": "$15.1 million per quarter ($53.6 million / 4).", "evidence_pages": [4]},
]
```

These pairs cover staffing, finance and safety."""

FERRIES_UNIT_2_EXPECTED = [
    Expected(
        "How many deck crew did Northwind Ferries employ at the end of 2025?", True, "on page"
    ),
    Expected(
        "By how much did the number of terminal staff fall from 2024 to 2025?", True, "difference"
    ),
    Expected("What was the total headcount at the end of 2025?", True, "column sum"),
    Expected("How much did revenue grow from 2024 to 2025?", True, "difference, currency"),
    Expected("By what percentage did Northwind's revenue grow in 2025?", True, "percent change"),
    Expected(
        "How many safety incidents did Northwind record in 2025, and how does that compare with 2024?",
        True,
        "on page",
    ),
    Expected(
        "What was the difference between revenue and operating costs in 2025?", True, "difference"
    ),
    Expected("When did the fare increase take effect, and how large was it?", True, "on page"),
    Expected(
        "By what percentage did engineering staff grow from 2024 to 2025?", True, "percent change"
    ),
    Expected("By how much did operating costs rise from 2024 to 2025?", False, "wrong difference"),
    Expected("What was the total headcount at the end of 2024?", False, "wrong column sum"),
    Expected(
        "What was the average revenue per quarter in 2025?", False, "arithmetic that does not hold"
    ),
]

LIBRARY_UNIT_1 = """Sure! Here are some questions and answers about the library statistics:

1. **Question:** How many items of all formats did the Central branch lend in 2025?
   **Answer:** 351 thousand items: 214 thousand books, 96 thousand e-books and 41 thousand audiobooks.

2. **Question:** How many more e-books did Central lend than Northgate?
   **Answer:** 61 thousand more e-books.

3. **Question:** By how many hours a week were Quayside's opening hours cut in March?
   **Answer:** By 8 hours a week, from 48 to 40, to fund longer Saturday opening at Central.

4. **Question:** What share of the library's events were for children?
   **Answer:** About 33.5% of the events (415 of 1,240) were for children.

5. **Question:** How much did visits to Central change from 2024 to 2025?
   **Answer:** Visits rose by 15,600, from 296,800 to 312,400.

6. **Question:** By what percentage did visits to Central rise in 2025?
   **Answer:** Visits rose by about 5.3%.

7. **Question:** How many of each format did the Northgate branch lend?
   **Answer:**
   - Books: 87 thousand
   - E-books: 35 thousand
   - Audiobooks: 12 thousand

8. **Question:** Which branch lent the fewest audiobooks?
   **Answer:** Quayside, with 9 thousand audiobooks.

9. **Question:** How many e-books did the three branches lend in total?
   **Answer:** The three branches lent 189 thousand e-books in total.

10. **Question:** How many items did the Quayside branch lend across all formats?
    **Answer:** Quayside lent 120 thousand items across all formats.

I hope these help!"""

LIBRARY_UNIT_1_EXPECTED = [
    Expected("How many items of all formats did the Central branch lend in 2025?", True, "row sum"),
    Expected("How many more e-books did Central lend than Northgate?", True, "difference"),
    Expected(
        "By how many hours a week were Quayside's opening hours cut in March?", True, "difference"
    ),
    Expected("What share of the library's events were for children?", True, "percentage"),
    Expected("How much did visits to Central change from 2024 to 2025?", True, "difference"),
    Expected("By what percentage did visits to Central rise in 2025?", True, "percent change"),
    Expected("How many of each format did the Northgate branch lend?", True, "bullet list"),
    Expected("Which branch lent the fewest audiobooks?", True, "on page"),
    Expected("How many e-books did the three branches lend in total?", False, "wrong column sum"),
    Expected(
        "How many items did the Quayside branch lend across all formats?", False, "wrong row sum"
    ),
]

LIBRARY_UNIT_2 = """Q1: How much more did the library spend on digital services in 2025 than in 2024?
A1: $60 thousand more: $240 thousand in 2025 against $180 thousand in 2024.
R1: Table 3 gives 240 and 180 for digital services; 240 - 180 = 60.
E1: pages 3

Q2: What was the total library budget in 2025?
A2: $5,360 thousand.
R2: Adding the 2025 column of Table 3: 3,515 + 585 + 1,020 + 240 = 5,360.
E2: pages 3

Q3: By what percentage did spending on buildings rise from 2024 to 2025, and why?
A3: By about 8.5%, because the Northgate roof was replaced.
R3: (1,020 - 940) / 940 is about 8.5%; page 3 gives the reason.
E3: pages 3

Q4: How many more active members did the library have at the end of the year?
A4: 2,400 more active members, up from 38,900 to 41,300.
R4: 41,300 - 38,900 = 2,400.
E4: pages 4

Q5: By what percentage did active membership grow?
A5: By about 6.2%.
R5: 2,400 / 38,900 is about 6.2%.
E5: pages 4

Q6: When was the mobile app launched, and how many users did it have by December?
A6: It was launched in June and had 9,850 users by December.
R6: Page 4 gives both facts.
E6: pages 4

Q7: How did spending on stock change from 2024 to 2025?
A7: It fell by $25 thousand, from $610 thousand to $585 thousand.
R7: 610 - 585 = 25.
E7: pages 3

Q8: How much more did the library spend on staff in 2025 than in 2024?
A8: $115 thousand more.
R8: 3,515 - 3,420 = 115.
E8: pages 3

Q9: What was the total library budget in 2024?
A9: $5,750 thousand.
R9: The 2024 column of Table 3 adds up to 5,750.
E9: pages 3

Q10: What share of active members used the mobile app by December?
A10: About 31% of active members.
R10: 9,850 users out of 41,300 members.
E10: pages 4

Q11: How many children's events did the library run per branch on average?
A11: On average"""

LIBRARY_UNIT_2_EXPECTED = [
    Expected(
        "How much more did the library spend on digital services in 2025 than in 2024?",
        True,
        "difference",
    ),
    Expected("What was the total library budget in 2025?", True, "column sum"),
    Expected(
        "By what percentage did spending on buildings rise from 2024 to 2025, and why?",
        True,
        "percent change",
    ),
    Expected(
        "How many more active members did the library have at the end of the year?",
        True,
        "difference",
    ),
    Expected("By what percentage did active membership grow?", True, "percent change"),
    Expected(
        "When was the mobile app launched, and how many users did it have by December?",
        True,
        "on page",
    ),
    Expected("How did spending on stock change from 2024 to 2025?", True, "difference"),
    Expected(
        "How much more did the library spend on staff in 2025 than in 2024?",
        False,
        "wrong difference",
    ),
    Expected("What was the total library budget in 2024?", False, "wrong column sum"),
    Expected(
        "What share of active members used the mobile app by December?", False, "wrong percentage"
    ),
]

# The reply for each unit, found by a phrase of its first page (the prompt shows the page text).
REPLIES = {
    "Table 1. Passengers by route": FERRIES_UNIT_1,
    "Table 3. Staff by department": FERRIES_UNIT_2,
    "Table 1. Loans by branch": LIBRARY_UNIT_1,
    "Table 3. Library budget": LIBRARY_UNIT_2,
}
EXPECTED = [
    *FERRIES_UNIT_1_EXPECTED,
    *FERRIES_UNIT_2_EXPECTED,
    *LIBRARY_UNIT_1_EXPECTED,
    *LIBRARY_UNIT_2_EXPECTED,
]
# The last Leopard pair was cut off at max_tokens: a reject with its reason, not a pair.
TRUNCATED_QUESTION = "How many children's events did the library run per branch on average?"


def reply_for(prompt_text: str) -> str | tuple[str, str]:
    """The scripted reply for the unit whose page text the prompt shows, with its finish reason
    when it ran into max_tokens."""
    found = [reply for phrase, reply in REPLIES.items() if phrase in prompt_text]
    if len(found) != 1:
        return "I'm sorry, but I can't help with that request."
    return (found[0], "length") if found[0] is LIBRARY_UNIT_2 else found[0]


def write_documents(folder: Path) -> list[Path]:
    """The two reports as PDFs in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    return [
        write_pdf(folder / "northwind_ferries_2025.pdf", FERRIES),
        write_pdf(folder / "kestrel_library_2025.pdf", LIBRARY),
    ]
